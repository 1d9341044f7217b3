/* Optional compiled accelerator of the ETF codec (see docs/etf.md, "The accelerator").

Theory of operation
-------------------
`decode_body(data, offset, max_depth)` decodes the term whose tag is at data[offset] and returns
(term, end), exactly like `decoder.decode_body_from`; `decode(data, max_depth, max_size)` is the
whole-term variant of `decoder.decode` for uncompressed terms. `setup()` hands over the pure
decoder's own functions, which this file uses in three ways:

1. Hot tags are decoded here: small/32-bit/big integers, NEW_FLOAT_EXT, binaries, STRING_EXT,
   NIL, tuples, lists, maps and atoms (atoms through a small cache keyed by their raw bytes whose
   misses call the pure `_atom`, so the very same interned objects come out), and pids, ports,
   references and improper lists whose tail is no list (OTP's `[alias | Ref]` call tags): their
   objects are built here through their classes' slots (`setup_encoder()` hands the classes
   over), with no Python call per term; pids are cached by raw bytes like atoms.
2. Every other tag (funs, exports, bit binaries, FLOAT_EXT, rejected tags), a list tail that is
   a list or a string, and a map whose keys are unhashable or equal in Python are handed to the
   pure decoder's function for exactly that piece (`_DISPATCH[tag]`, `_with_tail`, `_to_map`),
   with the same depth budget.
3. Anything that goes wrong (malformed input, a length beyond the input, the depth budget, the
   Python recursion limit, an exception from a pure helper) raises `Fallback`: the caller
   then decodes the whole input again with the pure decoder, which produces the result or the
   DecodeError with its exact message. This file therefore never builds an error message and
   only has to be right for the inputs it accepts. The one exception is the memory budget
   (decoder.py "Memory"): when a budgeted decode runs in this thread (`set_budgeted()` said one
   runs somewhere, and this thread's `decoder._budget.left` is set), the objects the pure decoder charges are charged here at
   the same costs, the budget is handed to and taken back from pure helpers through
   `_budget.left`, and running out raises the pure `_over_budget()` error at once (redoing the
   work in Python would double what a hostile input costs).

Safety: every length is checked against the bytes that remain before anything of that size is
allocated; containers with elements need depth > 0 (the pure decoder's rule), C recursion is
also capped at MAX_C_NESTING and guarded by Py_EnterRecursiveCall.

`encode(term)` is the encoder's counterpart, on the same three principles: exact int, float,
bool, None, Atom, str, bytes, tuple, list, dict, Charlist, Pid, Reference, Port and ImproperList
values are written here (into one bytes object that grows geometrically, so a large binary is copied once); any
other value is written by the pure encoder's `_any` for that value alone; a dict with more than
one key whose key types could alias (anything but Atom, int, float, bytes) is first checked by
the pure `_check_distinct_keys`; and anything else (an error from a pure helper, a non-finite
float, a value out of its field's range, nesting beyond the limits, a container changing size
while it is written) raises `Fallback`, and the pure encoder then encodes the whole term (and
raises its TypeError or ValueError). Compression is left to the Python wrapper.

`read_frames(...)` is the distribution frame reader's loop over one socket read (see its comment
below): it decodes the frames of the common form with the functions above and leaves every other
frame, and every frame it cannot decode, to the Python reader, so it never raises for its input.
*/

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#if PY_VERSION_HEX < 0x030C0000
#include <structmember.h>
#define MEMBER_OBJECT_EX T_OBJECT_EX
#else
#define MEMBER_OBJECT_EX Py_T_OBJECT_EX
#endif
#include <math.h>
#include <stdarg.h>
#include <string.h>

#define SMALL_INTEGER_EXT 97
#define INTEGER_EXT 98
#define SMALL_BIG_EXT 110
#define LARGE_BIG_EXT 111
#define NEW_FLOAT_EXT 70
#define BINARY_EXT 109
#define STRING_EXT 107
#define NIL_EXT 106
#define SMALL_TUPLE_EXT 104
#define LARGE_TUPLE_EXT 105
#define LIST_EXT 108
#define MAP_EXT 116
#define ATOM_EXT 100
#define SMALL_ATOM_EXT 115
#define ATOM_UTF8_EXT 118
#define SMALL_ATOM_UTF8_EXT 119
#define VERSION 131
#define COMPRESSED 80
#define NEW_PID_EXT_TAG 88
#define NEWER_REFERENCE_EXT_TAG 90
#define PID_EXT_TAG 103
#define REFERENCE_EXT_TAG 101
#define NEW_REFERENCE_EXT_TAG 114
#define PORT_EXT_TAG 102
#define NEW_PORT_EXT_TAG 89
#define V4_PORT_EXT_TAG 120

/* Bumped whenever setup(), setup_encoder() or the entry points change: _accelerated.py refuses
   a stale build of this file (and the pure codec is used) instead of calling it wrongly. */
#define API_VERSION 4

#define MAX_C_NESTING 10000
#define ATOM_SLOTS 2048

static PyObject *Fallback;          /* raised for anything the pure decoder must redo */
static PyObject *dispatch[256];     /* decoder._DISPATCH */
static PyObject *atom_fn;           /* decoder._atom */
static PyObject *with_tail_fn;      /* decoder._with_tail */
static PyObject *to_map_fn;         /* decoder._to_map */
static PyObject *charlist_type;     /* terms.Charlist */
static PyObject *budget_tls;        /* decoder._budget: .left, the bytes a decode may still use */
static PyObject *over_budget_fn;    /* decoder._over_budget */
static PyObject *budget_error_type; /* decoder.MemoryBudgetError */
static Py_ssize_t budgeted_count;   /* decoder._budgeted, kept up to date by set_budgeted() */
static PyObject *str_left;
static int ready;

static PyObject *any_fn;            /* encoder._any */
static PyObject *check_keys_fn;     /* encoder._check_distinct_keys */
static PyObject *atom_type;
static int encoder_ready;

typedef struct {
    PyObject *key;   /* bytes: the atom's complete raw encoding */
    PyObject *value; /* what decoder._atom returned for it */
} AtomSlot;

static AtomSlot atom_slots[ATOM_SLOTS];

typedef struct {
    PyObject *obj;            /* the input bytes object */
    const unsigned char *buf; /* its contents */
    Py_ssize_t size;
    int nesting;              /* C recursion depth */
    int budgeted;             /* a memory budget applies (decoder.py, "Memory") */
    Py_ssize_t left;          /* its bytes left; decoder._budget.left is the same number
                                 whenever Python code runs */
} Input;

/* Costs charged to the budget: the same as decoder.COST_* */
#define COST_CONTAINER 64
#define COST_SLOT 8
#define COST_NIL 56
#define COST_CHARLIST 96
/* Terms that may span more than this many bytes (from their offset to the end of the input, or
   of their frame in read_frames) are decoded with the cyclic GC paused: it would otherwise scan
   the growing result again and again (2.5x the time for 8 million empty lists). Keyed on the
   term's span, not the input's size: the frame reader decodes at offsets inside a large read. */
#define GC_PAUSE_BYTES (1 << 20)

static PyObject *fallback(void) {
    PyErr_SetNone(Fallback);
    return NULL;
}

static uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static PyObject *decode_term(Input *in, Py_ssize_t *pos, Py_ssize_t depth);

/* Publish `left` to decoder._budget before Python code runs (or when returning). */
static int store_left(Input *in) {
    if (!in->budgeted) {
        return 0;
    }
    PyObject *value = PyLong_FromSsize_t(in->left);
    if (value == NULL) {
        return -1;
    }
    int rc = PyObject_SetAttr(budget_tls, str_left, value);
    Py_DECREF(value);
    return rc;
}

/* Take back what Python code left of the budget. */
static int load_left(Input *in) {
    if (!in->budgeted) {
        return 0;
    }
    PyObject *value = PyObject_GetAttr(budget_tls, str_left);
    if (value == NULL) {
        return -1;
    }
    in->left = PyLong_AsSsize_t(value);
    Py_DECREF(value);
    return (in->left == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* Charge `cost` bytes; past the budget, raise decoder._over_budget() (not a Fallback). */
static int spend(Input *in, Py_ssize_t cost) {
    if (!in->budgeted) {
        return 0;
    }
    in->left -= cost;
    if (in->left >= 0) {
        return 0;
    }
    if (store_left(in) < 0) {
        return -1;
    }
    PyObject *exc = PyObject_CallNoArgs(over_budget_fn);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return -1;
}

/* Call a pure-decoder function with the budget handed over (and taken back). */
static PyObject *call_python(Input *in, PyObject *callable, const char *format, ...) {
    if (store_left(in) < 0) {
        return NULL;
    }
    va_list va;
    va_start(va, format);
    PyObject *args = Py_VaBuildValue(format, va);
    va_end(va);
    if (args == NULL) {
        return NULL;
    }
    PyObject *result = PyObject_CallObject(callable, args);
    Py_DECREF(args);
    if (load_left(in) < 0) {
        Py_XDECREF(result);
        return NULL;
    }
    return result;
}

/* Call a pure-decoder function `fn(data, pos, depth...)` that returns (term, end). */
static PyObject *take_pair(PyObject *pair, Py_ssize_t *pos) {
    if (pair == NULL) {
        return NULL;
    }
    if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
        Py_DECREF(pair);
        return fallback();
    }
    Py_ssize_t end = PyLong_AsSsize_t(PyTuple_GET_ITEM(pair, 1));
    if (end == -1 && PyErr_Occurred()) {
        Py_DECREF(pair);
        return NULL;
    }
    PyObject *term = PyTuple_GET_ITEM(pair, 0);
    Py_INCREF(term);
    Py_DECREF(pair);
    *pos = end;
    return term;
}

static PyObject *delegate(Input *in, Py_ssize_t *pos, Py_ssize_t depth) {
    PyObject *fn = dispatch[in->buf[*pos]];
    return take_pair(call_python(in, fn, "(Onn)", in->obj, *pos, depth), pos);
}

static uint32_t hash_raw(const unsigned char *p, Py_ssize_t n) {
    uint32_t h = 2166136261u;
    for (Py_ssize_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 16777619u;
    }
    return h;
}

/* Caches of decoded values (atoms, pids) keyed by their raw encoding: `n` slots, one entry each,
   a newer entry replacing an older one of the same slot. */

/* The value cached for raw[0:len] (a new reference), or NULL (no exception) when there is none. */
static PyObject *cache_find(AtomSlot *slots, size_t n, const unsigned char *raw, Py_ssize_t len) {
    AtomSlot *slot = &slots[hash_raw(raw, len) % n];
    if (slot->key != NULL && PyBytes_GET_SIZE(slot->key) == len
        && memcmp(PyBytes_AS_STRING(slot->key), raw, len) == 0) {
        Py_INCREF(slot->value);
        return slot->value;
    }
    return NULL;
}

/* Cache `value` for raw[0:len]; -1 with an exception when its key cannot be made. */
static int cache_put(AtomSlot *slots, size_t n, const unsigned char *raw, Py_ssize_t len,
                     PyObject *value) {
    PyObject *key = PyBytes_FromStringAndSize((const char *)raw, len);
    if (key == NULL) {
        return -1;
    }
    AtomSlot *slot = &slots[hash_raw(raw, len) % n];
    PyObject *old_key = slot->key, *old_value = slot->value;
    Py_INCREF(value);
    slot->key = key;
    slot->value = value;
    Py_XDECREF(old_key);
    Py_XDECREF(old_value);
    return 0;
}

static PyObject *decode_atom(Input *in, Py_ssize_t *pos) {
    Py_ssize_t at = *pos;
    unsigned char tag = in->buf[at];
    Py_ssize_t head = (tag == SMALL_ATOM_EXT || tag == SMALL_ATOM_UTF8_EXT) ? 2 : 3;
    if (at + head > in->size) {
        return fallback();
    }
    Py_ssize_t len = head == 2 ? in->buf[at + 1] : (in->buf[at + 1] << 8 | in->buf[at + 2]);
    Py_ssize_t end = at + head + len;
    if (end > in->size) {
        return fallback();
    }
    const unsigned char *raw = in->buf + at;
    PyObject *known = cache_find(atom_slots, ATOM_SLOTS, raw, end - at);
    if (known != NULL) {
        *pos = end;
        return known;
    }
    Py_ssize_t got;
    PyObject *value = take_pair(PyObject_CallFunction(atom_fn, "Oni", in->obj, at, 0), &got);
    if (value == NULL) {
        return NULL;
    }
    if (got != end) {
        Py_DECREF(value);
        return fallback();
    }
    if (cache_put(atom_slots, ATOM_SLOTS, raw, end - at, value) < 0) {
        Py_DECREF(value);
        return NULL;
    }
    *pos = end;
    return value;
}

/* --- pids, ports, references, improper lists ------------------------------------------------

Built here without calling Python: the object is allocated by its class's tp_alloc and its
slots are filled through their member descriptors' offsets (read once by setup_terms()), which is
what `object.__new__(cls)` plus the classes' `object.__setattr__` calls in __init__ do; the
`_hash` slot gets the very tuple hash __init__ computes. Pids repeat (a sender's pid is on every
message it sends), so they are cached by raw bytes like atoms. */

enum { F_NODE, F_ID, F_SERIAL, F_CREATION, F_HASH, F_IDS, F_ITEMS, F_TAIL, F_COUNT };

typedef struct {
    PyObject *type;
    Py_ssize_t offset[F_COUNT]; /* slot offsets; 0: the class has no such slot */
} ValueClass;

static ValueClass pid_class, reference_class, port_class, improper_class;
static PyObject *str_pid_name, *str_reference_name;
static int terms_ready;

#define PID_SLOTS 1024
static AtomSlot pid_slots[PID_SLOTS];

static PyObject *new_value(ValueClass *cls) {
    PyTypeObject *type = (PyTypeObject *)cls->type;
    return type->tp_alloc(type, 0);
}

/* Store `value` (a new reference, stolen; NULL is an error already set) into a slot. */
static int set_slot(PyObject *obj, ValueClass *cls, int field, PyObject *value) {
    if (value == NULL) {
        return -1;
    }
    PyObject **slot = (PyObject **)((char *)obj + cls->offset[field]);
    Py_XSETREF(*slot, value);
    return 0;
}

static PyObject *get_slot(PyObject *obj, ValueClass *cls, int field) {
    return *(PyObject **)((char *)obj + cls->offset[field]);
}

/* hash((name, *fields)) as a new int, like the classes' __init__. */
static PyObject *hash_of(PyObject *name, PyObject **fields, Py_ssize_t n) {
    PyObject *key = PyTuple_New(n + 1);
    if (key == NULL) {
        return NULL;
    }
    Py_INCREF(name);
    PyTuple_SET_ITEM(key, 0, name);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(fields[i]);
        PyTuple_SET_ITEM(key, i + 1, fields[i]);
    }
    Py_hash_t h = PyObject_Hash(key);
    Py_DECREF(key);
    return h == -1 && PyErr_Occurred() ? NULL : PyLong_FromSsize_t(h);
}

/* The node atom of a pid, port or reference at *pos (an Atom, else Fallback). */
static PyObject *decode_node(Input *in, Py_ssize_t *pos) {
    if (*pos >= in->size) {
        return fallback();
    }
    unsigned char tag = in->buf[*pos];
    if (tag != ATOM_EXT && tag != SMALL_ATOM_EXT && tag != ATOM_UTF8_EXT
        && tag != SMALL_ATOM_UTF8_EXT) {
        return fallback();
    }
    PyObject *node = decode_atom(in, pos);
    if (node != NULL && !Py_IS_TYPE(node, (PyTypeObject *)atom_type)) {
        Py_DECREF(node);
        return fallback();
    }
    return node;
}

static PyObject *decode_pid(Input *in, Py_ssize_t *pos) {
    Py_ssize_t at = *pos;
    Py_ssize_t tail = in->buf[at] == NEW_PID_EXT_TAG ? 12 : 9;
    /* The raw bytes are a cache key when the node is a small atom (as it always is). */
    if (at + 3 <= in->size
        && (in->buf[at + 1] == SMALL_ATOM_UTF8_EXT || in->buf[at + 1] == SMALL_ATOM_EXT)) {
        Py_ssize_t end = at + 3 + in->buf[at + 2] + tail;
        PyObject *known =
            end <= in->size ? cache_find(pid_slots, PID_SLOTS, in->buf + at, end - at) : NULL;
        if (known != NULL) {
            *pos = end;
            return known;
        }
    }
    Py_ssize_t start = at + 1;
    PyObject *node = decode_node(in, &start);
    if (node == NULL) {
        return NULL;
    }
    if (start + tail > in->size) {
        Py_DECREF(node);
        return fallback();
    }
    const unsigned char *p = in->buf + start;
    PyObject *fields[4] = {node, PyLong_FromUnsignedLong(be32(p)),
                           PyLong_FromUnsignedLong(be32(p + 4)),
                           PyLong_FromUnsignedLong(tail == 12 ? be32(p + 8) : p[8])};
    PyObject *pid = NULL;
    if (fields[1] != NULL && fields[2] != NULL && fields[3] != NULL) {
        pid = new_value(&pid_class);
    }
    if (pid != NULL) {
        for (int i = 0; i < 4; i++) {
            Py_INCREF(fields[i]);
            set_slot(pid, &pid_class, i, fields[i]); /* F_NODE..F_CREATION are 0..3 */
        }
        if (set_slot(pid, &pid_class, F_HASH, hash_of(str_pid_name, fields, 4)) < 0) {
            Py_CLEAR(pid);
        }
    }
    for (int i = 0; i < 4; i++) {
        Py_XDECREF(fields[i]);
    }
    if (pid == NULL) {
        return NULL;
    }
    Py_ssize_t end = start + tail;
    if ((in->buf[at + 1] == SMALL_ATOM_UTF8_EXT || in->buf[at + 1] == SMALL_ATOM_EXT)
        && cache_put(pid_slots, PID_SLOTS, in->buf + at, end - at, pid) < 0) {
        Py_DECREF(pid);
        return NULL;
    }
    *pos = end;
    return pid;
}

static PyObject *decode_reference(Input *in, Py_ssize_t *pos) {
    Py_ssize_t at = *pos, start, count, width;
    unsigned char tag = in->buf[at];
    if (tag == REFERENCE_EXT_TAG) {
        count = 1;
        start = at + 1;
    } else {
        if (at + 3 > in->size) {
            return fallback();
        }
        count = in->buf[at + 1] << 8 | in->buf[at + 2];
        if (count < 1 || count > 5) {
            return fallback();
        }
        start = at + 3;
    }
    PyObject *node = decode_node(in, &start);
    if (node == NULL) {
        return NULL;
    }
    width = tag == NEWER_REFERENCE_EXT_TAG ? 4 : 1;
    Py_ssize_t end = start + width + 4 * count;
    if (end > in->size) {
        Py_DECREF(node);
        return fallback();
    }
    const unsigned char *p = in->buf + start;
    unsigned long creation;
    PyObject *ids = PyTuple_New(count);
    if (tag == REFERENCE_EXT_TAG) { /* ID:32, Creation:8 */
        creation = p[4];
        if (ids != NULL) {
            PyTuple_SET_ITEM(ids, 0, PyLong_FromUnsignedLong(be32(p)));
        }
    } else {
        creation = width == 4 ? be32(p) : p[0];
        for (Py_ssize_t i = 0; ids != NULL && i < count; i++) {
            PyTuple_SET_ITEM(ids, i, PyLong_FromUnsignedLong(be32(p + width + 4 * i)));
        }
    }
    PyObject *fields[3] = {node, PyLong_FromUnsignedLong(creation), ids};
    int ok = fields[1] != NULL && ids != NULL;
    for (Py_ssize_t i = 0; ok && i < count; i++) {
        ok = PyTuple_GET_ITEM(ids, i) != NULL;
    }
    PyObject *ref = ok ? new_value(&reference_class) : NULL;
    if (ref != NULL) {
        Py_INCREF(node);
        Py_INCREF(fields[1]);
        Py_INCREF(ids);
        set_slot(ref, &reference_class, F_NODE, node);
        set_slot(ref, &reference_class, F_CREATION, fields[1]);
        set_slot(ref, &reference_class, F_IDS, ids);
        if (set_slot(ref, &reference_class, F_HASH, hash_of(str_reference_name, fields, 3)) < 0) {
            Py_CLEAR(ref);
        }
    }
    Py_DECREF(node);
    Py_XDECREF(fields[1]);
    Py_XDECREF(ids);
    if (ref != NULL) {
        *pos = end;
    }
    return ref;
}

static PyObject *decode_port(Input *in, Py_ssize_t *pos) {
    Py_ssize_t at = *pos;
    unsigned char tag = in->buf[at];
    Py_ssize_t start = at + 1;
    PyObject *node = decode_node(in, &start);
    if (node == NULL) {
        return NULL;
    }
    Py_ssize_t size = tag == V4_PORT_EXT_TAG ? 12 : tag == NEW_PORT_EXT_TAG ? 8 : 5;
    if (start + size > in->size) {
        Py_DECREF(node);
        return fallback();
    }
    const unsigned char *p = in->buf + start;
    PyObject *id, *creation;
    if (tag == V4_PORT_EXT_TAG) {
        id = PyLong_FromUnsignedLongLong((unsigned long long)be32(p) << 32 | be32(p + 4));
        creation = PyLong_FromUnsignedLong(be32(p + 8));
    } else {
        id = PyLong_FromUnsignedLong(be32(p));
        creation = PyLong_FromUnsignedLong(size == 8 ? be32(p + 4) : p[4]);
    }
    PyObject *port = id != NULL && creation != NULL ? new_value(&port_class) : NULL;
    if (port == NULL) {
        Py_DECREF(node);
        Py_XDECREF(id);
        Py_XDECREF(creation);
        return NULL;
    }
    set_slot(port, &port_class, F_NODE, node);
    set_slot(port, &port_class, F_ID, id);
    set_slot(port, &port_class, F_CREATION, creation);
    *pos = start + size;
    return port;
}

/* [Items | Tail] with a tail that is no list: ImproperList(items, tail) (as decoder._with_tail
   for such a tail; the items are non-empty). */
static PyObject *improper_list(PyObject *items, PyObject *tail) {
    PyObject *tuple = PyList_AsTuple(items);
    PyObject *result = tuple == NULL ? NULL : new_value(&improper_class);
    if (result == NULL) {
        Py_XDECREF(tuple);
        Py_DECREF(tail);
        return NULL;
    }
    set_slot(result, &improper_class, F_ITEMS, tuple);
    set_slot(result, &improper_class, F_TAIL, tail);
    return result;
}

static PyObject *decode_big(Input *in, Py_ssize_t *pos) {
    Py_ssize_t at = *pos, start;
    size_t n;
    int sign;
    if (in->buf[at] == SMALL_BIG_EXT) {
        if (at + 3 > in->size) {
            return fallback();
        }
        n = in->buf[at + 1];
        sign = in->buf[at + 2];
        start = at + 3;
    } else {
        if (at + 6 > in->size) {
            return fallback();
        }
        n = be32(in->buf + at + 1);
        sign = in->buf[at + 5];
        start = at + 6;
    }
    if (n > (size_t)(in->size - start) || sign > 1) {
        return fallback();
    }
    PyObject *magnitude = _PyLong_FromByteArray(in->buf + start, n, 1, 0);
    if (magnitude == NULL) {
        return NULL;
    }
    *pos = start + (Py_ssize_t)n;
    if (!sign) {
        return magnitude;
    }
    PyObject *negative = PyNumber_Negative(magnitude);
    Py_DECREF(magnitude);
    return negative;
}

/* Decode `count` terms into `items` (a new tuple or list filled with SET_ITEM). */
static int decode_items(Input *in, Py_ssize_t *pos, Py_ssize_t depth, PyObject *items,
                        Py_ssize_t count, int is_tuple) {
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = decode_term(in, pos, depth);
        if (item == NULL) {
            return -1;
        }
        if (is_tuple) {
            PyTuple_SET_ITEM(items, i, item);
        } else {
            PyList_SET_ITEM(items, i, item);
        }
    }
    return 0;
}

static PyObject *decode_map(Input *in, Py_ssize_t *pos, Py_ssize_t depth, Py_ssize_t count,
                            Py_ssize_t start) {
    PyObject *flat = PyList_New(2 * count);
    if (flat == NULL || decode_items(in, pos, depth, flat, 2 * count, 0) < 0) {
        Py_XDECREF(flat);
        return NULL;
    }
#if PY_VERSION_HEX < 0x030D0000
    PyObject *result = _PyDict_NewPresized(count);
#else
    PyObject *result = PyDict_New();
#endif
    if (result == NULL) {
        Py_DECREF(flat);
        return NULL;
    }
    int plain = 1;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (PyDict_SetItem(result, PyList_GET_ITEM(flat, 2 * i), PyList_GET_ITEM(flat, 2 * i + 1))
            < 0) {
            if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
                Py_DECREF(flat);
                Py_DECREF(result);
                return NULL;
            }
            PyErr_Clear();
            plain = 0;
            break;
        }
    }
    if (plain && PyDict_GET_SIZE(result) == count) {
        Py_DECREF(flat);
        return result;
    }
    Py_DECREF(result);
    result = PyObject_CallFunction(to_map_fn, "On", flat, start);
    Py_DECREF(flat);
    return result;
}

static PyObject *decode_container(Input *in, Py_ssize_t *pos, Py_ssize_t depth) {
    Py_ssize_t start = *pos;
    unsigned char tag = in->buf[start];
    Py_ssize_t count;
    if (tag == SMALL_TUPLE_EXT) {
        if (start + 2 > in->size) {
            return fallback();
        }
        count = in->buf[start + 1];
        *pos = start + 2;
    } else {
        if (start + 5 > in->size) {
            return fallback();
        }
        count = be32(in->buf + start + 1);
        *pos = start + 5;
    }
    Py_ssize_t remaining = in->size - *pos;
    if (count > remaining || (tag == MAP_EXT && count > remaining / 2)) {
        return fallback();
    }
    if (count > 0 && depth <= 0) {
        return fallback();
    }
    depth -= 1;
    if (spend(in, COST_CONTAINER + COST_SLOT * (tag == MAP_EXT ? 2 * count : count)) < 0) {
        return NULL;
    }
    if (count > 0) {
        if (in->nesting >= MAX_C_NESTING) {
            return fallback();
        }
        if (Py_EnterRecursiveCall(" while decoding ETF")) {
            return NULL;
        }
        in->nesting++;
    }
    PyObject *result;
    if (tag == MAP_EXT) {
        result = decode_map(in, pos, depth, count, start);
    } else if (tag == LIST_EXT) {
        result = PyList_New(count);
        if (result != NULL && decode_items(in, pos, depth, result, count, 0) < 0) {
            Py_CLEAR(result);
        }
    } else {
        result = PyTuple_New(count);
        if (result != NULL && decode_items(in, pos, depth, result, count, 1) < 0) {
            Py_CLEAR(result);
        }
    }
    if (count > 0) {
        in->nesting--;
        Py_LeaveRecursiveCall();
    }
    if (result == NULL || tag != LIST_EXT) {
        return result;
    }
    if (*pos >= in->size) {
        Py_DECREF(result);
        return fallback();
    }
    unsigned char tail_tag = in->buf[*pos];
    if (tail_tag == NIL_EXT) {
        *pos += 1;
        return result;
    }
    if (terms_ready && tail_tag != LIST_EXT && tail_tag != STRING_EXT) {
        /* A tail that is no list (OTP's [alias | Ref] call tags): no folding to do. */
        PyObject *tail = decode_term(in, pos, depth);
        if (tail == NULL || count == 0) {
            Py_DECREF(result);
            return tail;
        }
        PyObject *whole = improper_list(result, tail);
        Py_DECREF(result);
        return whole;
    }
    PyObject *whole = take_pair(
        call_python(in, with_tail_fn, "(OOnnn)", result, in->obj, *pos, depth, start), pos);
    Py_DECREF(result);
    return whole;
}

static PyObject *decode_term(Input *in, Py_ssize_t *pos, Py_ssize_t depth) {
    Py_ssize_t at = *pos;
    if (at >= in->size) {
        return fallback();
    }
    const unsigned char *p = in->buf + at;
    switch (p[0]) {
    case SMALL_INTEGER_EXT:
        if (at + 2 > in->size) {
            return fallback();
        }
        *pos = at + 2;
        return PyLong_FromLong(p[1]);
    case INTEGER_EXT:
        if (at + 5 > in->size) {
            return fallback();
        }
        *pos = at + 5;
        return PyLong_FromLong((long)(int32_t)be32(p + 1));
    case SMALL_BIG_EXT:
    case LARGE_BIG_EXT:
        return decode_big(in, pos);
    case NEW_FLOAT_EXT: {
        if (at + 9 > in->size) {
            return fallback();
        }
#if PY_VERSION_HEX >= 0x030B0000
        double value = PyFloat_Unpack8((const char *)p + 1, 0);
#else
        double value = _PyFloat_Unpack8(p + 1, 0);
#endif
        if (value == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
        if (!isfinite(value)) {
            return fallback();
        }
        *pos = at + 9;
        return PyFloat_FromDouble(value);
    }
    case BINARY_EXT: {
        if (at + 5 > in->size) {
            return fallback();
        }
        Py_ssize_t len = be32(p + 1);
        if (len > in->size - at - 5) {
            return fallback();
        }
        *pos = at + 5 + len;
        return PyBytes_FromStringAndSize((const char *)p + 5, len);
    }
    case STRING_EXT: {
        if (at + 3 > in->size) {
            return fallback();
        }
        Py_ssize_t len = p[1] << 8 | p[2];
        if (len > in->size - at - 3) {
            return fallback();
        }
        if (spend(in, COST_CHARLIST + 3 + len) < 0) {
            return NULL;
        }
        PyObject *text = PyUnicode_DecodeLatin1((const char *)p + 3, len, NULL);
        if (text == NULL) {
            return NULL;
        }
        PyObject *charlist = PyObject_CallOneArg(charlist_type, text);
        Py_DECREF(text);
        *pos = at + 3 + len;
        return charlist;
    }
    case NIL_EXT:
        if (spend(in, COST_NIL) < 0) {
            return NULL;
        }
        *pos = at + 1;
        return PyList_New(0);
    case SMALL_TUPLE_EXT:
    case LARGE_TUPLE_EXT:
    case LIST_EXT:
    case MAP_EXT:
        return decode_container(in, pos, depth);
    case ATOM_EXT:
    case SMALL_ATOM_EXT:
    case ATOM_UTF8_EXT:
    case SMALL_ATOM_UTF8_EXT:
        return decode_atom(in, pos);
    case NEW_PID_EXT_TAG:
    case PID_EXT_TAG:
        return terms_ready ? decode_pid(in, pos) : delegate(in, pos, depth);
    case NEWER_REFERENCE_EXT_TAG:
    case NEW_REFERENCE_EXT_TAG:
    case REFERENCE_EXT_TAG:
        return terms_ready ? decode_reference(in, pos) : delegate(in, pos, depth);
    case V4_PORT_EXT_TAG:
    case NEW_PORT_EXT_TAG:
    case PORT_EXT_TAG:
        return terms_ready ? decode_port(in, pos) : delegate(in, pos, depth);
    default:
        return delegate(in, pos, depth);
    }
}

static int ssize_arg(PyObject *arg, Py_ssize_t *out);

/* Turn any Exception into Fallback (KeyboardInterrupt and the like propagate). */
static PyObject *as_fallback(PyObject *result) {
    if (result == NULL && PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();
        PyErr_SetNone(Fallback);
    }
    return result;
}

/* Start decoding: take this thread's budget, if a budgeted decode runs in it (decoder.py,
   "Memory": `budgeted_count` counts them in all threads, `_budget.left` is this thread's), and
   pause the GC when the term may span more than GC_PAUSE_BYTES (`span`). */
static int begin(Input *in, PyObject *obj, Py_ssize_t span, int *gc_was_on) {
    in->obj = obj;
    in->buf = (const unsigned char *)PyBytes_AS_STRING(obj);
    in->size = PyBytes_GET_SIZE(obj);
    in->nesting = 0;
    in->budgeted = 0;
    in->left = 0;
    if (budgeted_count) {
        PyObject *left = PyObject_GetAttr(budget_tls, str_left);
        if (left == NULL) {
            PyErr_Clear();  /* no budget set in this thread */
        } else {
            int rc = left == Py_None ? 0 : ssize_arg(left, &in->left);
            in->budgeted = left != Py_None;
            Py_DECREF(left);
            if (rc < 0) {
                return -1;
            }
        }
    }
    *gc_was_on = span > GC_PAUSE_BYTES ? PyGC_Disable() : 0;
    return 0;
}

/* Finish decoding: turn any Exception but a MemoryBudgetError into Fallback (KeyboardInterrupt
   and the like propagate), after which the budget is as it was at `entry_left` (the pure
   decoder redoes the whole input); publish what is left otherwise. */
static PyObject *finish(Input *in, PyObject *result, Py_ssize_t entry_left, int gc_was_on) {
    if (gc_was_on) {
        PyGC_Enable();
    }
    if (result == NULL && !PyErr_ExceptionMatches(budget_error_type)) {
        as_fallback(NULL);
        in->left = entry_left;
    }
    if (in->budgeted) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (store_left(in) < 0) {
            Py_XDECREF(result);
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            return NULL;
        }
        PyErr_Restore(type, value, tb);
    }
    return result;
}

static int ssize_arg(PyObject *arg, Py_ssize_t *out) {
    if (!PyLong_CheckExact(arg)) {
        return -1;
    }
    *out = PyLong_AsSsize_t(arg);
    if (*out == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return 0;
}

static PyObject *decode_body(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t offset, depth;
    Input in;
    int gc_was_on;
    if (!ready || nargs != 3 || !PyBytes_CheckExact(args[0])
        || ssize_arg(args[1], &offset) < 0 || ssize_arg(args[2], &depth) < 0
        || begin(&in, args[0], PyBytes_GET_SIZE(args[0]) - offset, &gc_was_on) < 0) {
        return fallback();
    }
    Py_ssize_t pos = offset;
    Py_ssize_t entry_left = in.left;
    PyObject *term = (offset < 0 || offset >= in.size) ? fallback() : decode_term(&in, &pos, depth);
    term = finish(&in, term, entry_left, gc_was_on);
    if (term == NULL) {
        return NULL;
    }
    PyObject *end = PyLong_FromSsize_t(pos);
    if (end == NULL) {
        Py_DECREF(term);
        return NULL;
    }
    PyObject *pair = PyTuple_New(2);
    if (pair == NULL) {
        Py_DECREF(term);
        Py_DECREF(end);
        return NULL;
    }
    PyTuple_SET_ITEM(pair, 0, term);
    PyTuple_SET_ITEM(pair, 1, end);
    return pair;
}

static PyObject *decode(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t depth, max_size;
    Input in;
    int gc_was_on;
    if (!ready || nargs != 3 || !PyBytes_CheckExact(args[0])
        || ssize_arg(args[1], &depth) < 0 || ssize_arg(args[2], &max_size) < 0
        || begin(&in, args[0], PyBytes_GET_SIZE(args[0]), &gc_was_on) < 0) {
        return fallback();
    }
    Py_ssize_t pos = 1;
    Py_ssize_t entry_left = in.left;
    PyObject *term = (in.size < 2 || in.size > max_size || in.buf[0] != VERSION
                      || in.buf[1] == COMPRESSED)
                         ? fallback()
                         : decode_term(&in, &pos, depth);
    term = finish(&in, term, entry_left, gc_was_on);
    if (term != NULL && pos != in.size) {
        Py_DECREF(term);
        return fallback();
    }
    return term;
}

/* --- frames ------------------------------------------------------------------------------- */

/* read_frames(data, pos, max_frame, max_body, max_depth, no_message, out) -> pos

   The hot loop of distribution/frames.py `FrameReader.feed`: walks the complete frames of
   `data` from `pos` (each `Len:32` then `Len` bytes) and appends `(control, message)` to the
   list `out` for every frame of the common form, which it decodes here: a tick (`Len == 0`,
   nothing appended) or `131, 68, 0, ControlTerm [, Message]` (normal header, no atom-cache
   refs) of at most `max_body` bytes whose control term is a tuple starting with an exact int
   and ends inside the frame, and whose message (if any) ends exactly at the frame's end
   (`no_message` stands for none). It returns the offset of the first frame it did not take:
   the end of `data`, an incomplete frame, or a frame of any other kind or any problem
   (a length over `max_frame`, pass-through, fragments, atom-cache refs, a term it cannot
   decode or that does not fit). The caller handles that frame in Python, which decodes it or
   raises its usual error, and calls again after it; nothing is ever raised here for the
   input, so both paths give the same results and errors. Nothing is taken when a memory
   budget is set in this thread (the Python path charges it). */
static int read_one(Input *in, Py_ssize_t start, Py_ssize_t end, Py_ssize_t depth,
                    PyObject *no_message, PyObject *out) {
    int gc_was_on = end - start > GC_PAUSE_BYTES ? PyGC_Disable() : 0;
    Py_ssize_t pos = start;
    PyObject *control = decode_term(in, &pos, depth);
    PyObject *message = NULL;
    int rc = 0;
    if (control == NULL) {
        rc = -1;
    } else if (!PyTuple_CheckExact(control) || PyTuple_GET_SIZE(control) == 0
               || !PyLong_CheckExact(PyTuple_GET_ITEM(control, 0)) || pos > end) {
        rc = 1;
    } else if (pos == end) {
        Py_INCREF(no_message);
        message = no_message;
    } else if ((message = decode_term(in, &pos, depth)) == NULL) {
        rc = -1;
    } else if (pos != end) {
        rc = 1;
    }
    if (gc_was_on) {
        PyGC_Enable();
    }
    if (rc == 0) {
        PyObject *pair = PyTuple_Pack(2, control, message);
        rc = (pair == NULL || PyList_Append(out, pair) < 0) ? -1 : 0;
        Py_XDECREF(pair);
    }
    Py_XDECREF(control);
    Py_XDECREF(message);
    if (rc < 0 && PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();  /* the Python path decodes this frame again and raises its error */
        rc = 1;
    }
    return rc;
}

static PyObject *read_frames(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t pos, max_frame, max_body, depth;
    if (nargs != 7 || !PyBytes_CheckExact(args[0]) || ssize_arg(args[1], &pos) < 0
        || ssize_arg(args[2], &max_frame) < 0 || ssize_arg(args[3], &max_body) < 0
        || ssize_arg(args[4], &depth) < 0 || !PyList_CheckExact(args[6]) || pos < 0) {
        PyErr_SetString(PyExc_TypeError,
                        "read_frames(data: bytes, pos, max_frame, max_body, max_depth, "
                        "no_message, out: list) expected");
        return NULL;
    }
    Input in;
    int gc_was_on;
    if (!ready || begin(&in, args[0], 0, &gc_was_on) < 0) {
        PyErr_Clear();
        return PyLong_FromSsize_t(pos);
    }
    if (in.budgeted) {
        return PyLong_FromSsize_t(pos);
    }
    const unsigned char *buf = in.buf;
    Py_ssize_t size = in.size;
    while (size - pos >= 4) {
        Py_ssize_t length = (Py_ssize_t)be32(buf + pos);
        Py_ssize_t end = pos + 4 + length;
        if (length > max_frame || end > size) {
            break;
        }
        if (length) {
            const unsigned char *body = buf + pos + 4;
            if (length > max_body || length <= 3 || body[0] != VERSION || body[1] != 68
                || body[2] != 0) {
                break;
            }
            int rc = read_one(&in, pos + 7, end, depth, args[5], args[6]);
            if (rc < 0) {
                return NULL;
            }
            if (rc > 0) {
                break;
            }
        }
        pos = end;
    }
    return PyLong_FromSsize_t(pos);
}

/* --- encoder ------------------------------------------------------------------------------ */

typedef struct {
    PyObject *bytes; /* the output, over-allocated; trimmed at the end */
    Py_ssize_t len;
    int nesting;
} Output;

static int reserve(Output *out, Py_ssize_t extra) {
    Py_ssize_t need = out->len + extra;
    Py_ssize_t have = PyBytes_GET_SIZE(out->bytes);
    if (need <= have) {
        return 0;
    }
    if (extra > PY_SSIZE_T_MAX / 2 - out->len) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t size = have * 2 > need ? have * 2 : need;
    return _PyBytes_Resize(&out->bytes, size);
}

static unsigned char *room(Output *out, Py_ssize_t extra) {
    if (reserve(out, extra) < 0) {
        return NULL;
    }
    unsigned char *at = (unsigned char *)PyBytes_AS_STRING(out->bytes) + out->len;
    out->len += extra;
    return at;
}

static void put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static int write_raw(Output *out, const void *data, Py_ssize_t n) {
    unsigned char *p = room(out, n);
    if (p == NULL) {
        return -1;
    }
    memcpy(p, data, n);
    return 0;
}

/* A tag byte and a 32-bit length, then `n` bytes of data. */
static int write_tagged(Output *out, unsigned char tag, const void *data, Py_ssize_t n) {
    if ((size_t)n > 0xFFFFFFFFu) {
        PyErr_SetNone(Fallback);
        return -1;
    }
    unsigned char *p = room(out, 5 + n);
    if (p == NULL) {
        return -1;
    }
    p[0] = tag;
    put32(p + 1, (uint32_t)n);
    memcpy(p + 5, data, n);
    return 0;
}

static int write_atom_text(Output *out, PyObject *name) {
    Py_ssize_t n;
    const char *text = PyUnicode_AsUTF8AndSize(name, &n);
    if (text == NULL) {
        return -1;
    }
    if (n > 0xFFFF) {
        PyErr_SetNone(Fallback);
        return -1;
    }
    unsigned char *p = room(out, n + (n < 256 ? 2 : 3));
    if (p == NULL) {
        return -1;
    }
    if (n < 256) {
        *p++ = SMALL_ATOM_UTF8_EXT;
        *p++ = (unsigned char)n;
    } else {
        *p++ = ATOM_UTF8_EXT;
        *p++ = (unsigned char)(n >> 8);
        *p++ = (unsigned char)n;
    }
    memcpy(p, text, n);
    return 0;
}

static int write_atom_cstr(Output *out, const char *name) {
    Py_ssize_t n = (Py_ssize_t)strlen(name);
    unsigned char *p = room(out, n + 2);
    if (p == NULL) {
        return -1;
    }
    p[0] = SMALL_ATOM_UTF8_EXT;
    p[1] = (unsigned char)n;
    memcpy(p + 2, name, n);
    return 0;
}

static int write_big(Output *out, PyObject *value) {
    int negative = _PyLong_Sign(value) < 0;
    PyObject *magnitude = negative ? PyNumber_Negative(value) : Py_NewRef(value);
    if (magnitude == NULL) {
        return -1;
    }
    size_t bits = _PyLong_NumBits(magnitude);
    size_t n = (bits + 7) / 8;
    if (bits == (size_t)-1 || n > 0xFFFFFFFFu) {
        Py_DECREF(magnitude);
        PyErr_SetNone(Fallback);
        return -1;
    }
    size_t head = n < 256 ? 3 : 6;
    unsigned char *p = room(out, (Py_ssize_t)(head + n));
    if (p == NULL) {
        Py_DECREF(magnitude);
        return -1;
    }
    if (n < 256) {
        p[0] = SMALL_BIG_EXT;
        p[1] = (unsigned char)n;
        p[2] = (unsigned char)negative;
    } else {
        p[0] = LARGE_BIG_EXT;
        put32(p + 1, (uint32_t)n);
        p[5] = (unsigned char)negative;
    }
#if PY_VERSION_HEX >= 0x030D0000
    int rc = _PyLong_AsByteArray((PyLongObject *)magnitude, p + head, n, 1, 0, 1);
#else
    int rc = _PyLong_AsByteArray((PyLongObject *)magnitude, p + head, n, 1, 0);
#endif
    Py_DECREF(magnitude);
    return rc;
}

static int write_int(Output *out, PyObject *value) {
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (!overflow && v >= 0 && v <= 255) {
        unsigned char *p = room(out, 2);
        if (p == NULL) {
            return -1;
        }
        p[0] = SMALL_INTEGER_EXT;
        p[1] = (unsigned char)v;
        return 0;
    }
    if (!overflow && v >= INT32_MIN && v <= INT32_MAX) {
        unsigned char *p = room(out, 5);
        if (p == NULL) {
            return -1;
        }
        p[0] = INTEGER_EXT;
        put32(p + 1, (uint32_t)(int32_t)v);
        return 0;
    }
    return write_big(out, value);
}

/* `value` as an unsigned integer of at most `max`, or -1 when it is anything else. */
static long long field(PyObject *value, unsigned long long max) {
    if (value == NULL || !PyLong_CheckExact(value)) {
        return -1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || v < 0 || (unsigned long long)v > max) {
        PyErr_Clear();
        return -1;
    }
    return v;
}

static int encode_term(Output *out, PyObject *term);

/* Encode `term` with the pure encoder's `_any` and append its pieces. */
static int delegate_encode(Output *out, PyObject *term) {
    PyObject *pieces = PyList_New(0);
    if (pieces == NULL) {
        return -1;
    }
    PyObject *none = PyObject_CallFunctionObjArgs(any_fn, term, pieces, NULL);
    if (none == NULL) {
        Py_DECREF(pieces);
        return -1;
    }
    Py_DECREF(none);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pieces); i++) {
        Py_buffer view;
        if (PyObject_GetBuffer(PyList_GET_ITEM(pieces, i), &view, PyBUF_SIMPLE) < 0) {
            Py_DECREF(pieces);
            return -1;
        }
        int rc = write_raw(out, view.buf, view.len);
        PyBuffer_Release(&view);
        if (rc < 0) {
            Py_DECREF(pieces);
            return -1;
        }
    }
    Py_DECREF(pieces);
    return 0;
}

static int encode_item(Output *out, PyObject *item);

/* Node atom text and up to 5 fields of a pid/port/reference, checked: 0 when written. */
/* `tag`, the node atom, then three 32-bit words: the form of NEW_PID_EXT and V4_PORT_EXT. */
static int write_node_words(Output *out, unsigned char tag, PyObject *node, uint32_t a,
                            uint32_t b, uint32_t c) {
    unsigned char *p = room(out, 1);
    if (p == NULL) {
        return -1;
    }
    p[0] = tag;
    if (write_atom_text(out, node) < 0 || (p = room(out, 12)) == NULL) {
        return -1;
    }
    put32(p, a);
    put32(p + 4, b);
    put32(p + 8, c);
    return 0;
}

static int write_pid(Output *out, PyObject *pid) {
    PyObject *node = get_slot(pid, &pid_class, F_NODE);
    long long v[3] = {field(get_slot(pid, &pid_class, F_ID), 0xFFFFFFFFu),
                      field(get_slot(pid, &pid_class, F_SERIAL), 0xFFFFFFFFu),
                      field(get_slot(pid, &pid_class, F_CREATION), 0xFFFFFFFFu)};
    if (node == NULL || !Py_IS_TYPE(node, (PyTypeObject *)atom_type) || v[0] < 0 || v[1] < 0
        || v[2] < 0) {
        return delegate_encode(out, pid);
    }
    return write_node_words(out, NEW_PID_EXT_TAG, node, (uint32_t)v[0], (uint32_t)v[1],
                            (uint32_t)v[2]);
}

static int write_reference(Output *out, PyObject *ref) {
    PyObject *node = get_slot(ref, &reference_class, F_NODE);
    PyObject *ids = get_slot(ref, &reference_class, F_IDS);
    long long c = field(get_slot(ref, &reference_class, F_CREATION), 0xFFFFFFFFu);
    long long words[5];
    Py_ssize_t n = ids != NULL && PyTuple_CheckExact(ids) ? PyTuple_GET_SIZE(ids) : 0;
    int ok = node != NULL && Py_IS_TYPE(node, (PyTypeObject *)atom_type) && c >= 0 && n >= 1
             && n <= 5;
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        words[i] = field(PyTuple_GET_ITEM(ids, i), 0xFFFFFFFFu);
        ok = words[i] >= 0;
    }
    unsigned char *p;
    if (!ok) {
        return delegate_encode(out, ref);
    }
    if ((p = room(out, 3)) == NULL) {
        return -1;
    }
    p[0] = NEWER_REFERENCE_EXT_TAG;
    p[1] = 0;
    p[2] = (unsigned char)n;
    if (write_atom_text(out, node) < 0 || (p = room(out, 4 + 4 * n)) == NULL) {
        return -1;
    }
    put32(p, (uint32_t)c);
    for (Py_ssize_t i = 0; i < n; i++) {
        put32(p + 4 + 4 * i, (uint32_t)words[i]);
    }
    return 0;
}

/* V4_PORT_EXT, as the pure encoder writes a port with a non-negative id. */
static int write_port(Output *out, PyObject *port) {
    PyObject *node = get_slot(port, &port_class, F_NODE);
    PyObject *id = get_slot(port, &port_class, F_ID);
    long long c = field(get_slot(port, &port_class, F_CREATION), 0xFFFFFFFFu);
    unsigned long long v = 0;
    int ok = node != NULL && Py_IS_TYPE(node, (PyTypeObject *)atom_type) && c >= 0 && id != NULL
             && PyLong_CheckExact(id) && _PyLong_Sign(id) >= 0;
    if (ok) {
        v = PyLong_AsUnsignedLongLong(id);
        if (v == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            ok = 0;
        }
    }
    if (!ok) {
        return delegate_encode(out, port);
    }
    return write_node_words(out, V4_PORT_EXT_TAG, node, (uint32_t)(v >> 32), (uint32_t)v,
                            (uint32_t)c);
}

/* LIST_EXT of the items, then the tail (decoder-made ImproperLists always have a tuple). */
static int write_improper(Output *out, PyObject *term) {
    PyObject *items = get_slot(term, &improper_class, F_ITEMS);
    PyObject *tail = get_slot(term, &improper_class, F_TAIL);
    if (items == NULL || tail == NULL || !PyTuple_CheckExact(items)) {
        return delegate_encode(out, term);
    }
    Py_ssize_t n = PyTuple_GET_SIZE(items);
    unsigned char *p = room(out, 5);
    if (p == NULL) {
        return -1;
    }
    p[0] = LIST_EXT;
    put32(p + 1, (uint32_t)n);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (encode_item(out, PyTuple_GET_ITEM(items, i)) < 0) {
            return -1;
        }
    }
    return encode_item(out, tail);
}

/* Encode one element while holding a reference to it (a callback could drop its container's). */
static int encode_item(Output *out, PyObject *item) {
    Py_INCREF(item);
    int rc = encode_term(out, item);
    Py_DECREF(item);
    return rc;
}

static int write_list(Output *out, PyObject *list) {
    Py_ssize_t n = PyList_GET_SIZE(list);
    if (n == 0) {
        unsigned char *p = room(out, 1);
        if (p == NULL) {
            return -1;
        }
        p[0] = NIL_EXT;
        return 0;
    }
    int string = n <= 0xFFFF;
    for (Py_ssize_t i = 0; string && i < n; i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        string = PyLong_CheckExact(item) && _PyLong_Sign(item) >= 0
                 && PyLong_AsLongLong(item) <= 255 && !PyErr_Occurred();
    }
    PyErr_Clear();
    if (string) {
        unsigned char *p = room(out, 3 + n);
        if (p == NULL) {
            return -1;
        }
        p[0] = STRING_EXT;
        p[1] = (unsigned char)(n >> 8);
        p[2] = (unsigned char)n;
        for (Py_ssize_t i = 0; i < n; i++) {
            p[3 + i] = (unsigned char)PyLong_AsLong(PyList_GET_ITEM(list, i));
        }
        return 0;
    }
    unsigned char *p = room(out, 5);
    if (p == NULL) {
        return -1;
    }
    p[0] = LIST_EXT;
    put32(p + 1, (uint32_t)n);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyList_GET_SIZE(list) != n) {
            PyErr_SetNone(Fallback);
            return -1;
        }
        if (encode_item(out, PyList_GET_ITEM(list, i)) < 0) {
            return -1;
        }
    }
    if (PyList_GET_SIZE(list) != n) {
        PyErr_SetNone(Fallback);
        return -1;
    }
    p = room(out, 1);
    if (p == NULL) {
        return -1;
    }
    p[0] = NIL_EXT;
    return 0;
}

static int write_dict(Output *out, PyObject *dict) {
    Py_ssize_t n = PyDict_GET_SIZE(dict), i = 0;
    PyObject *key, *value;
    if (n > 0xFFFFFFFFLL) {
        PyErr_SetNone(Fallback);
        return -1;
    }
    if (n > 1) {
        int check = 0;
        while (!check && PyDict_Next(dict, &i, &key, &value)) {
            check = !(Py_IS_TYPE(key, (PyTypeObject *)atom_type) || PyLong_CheckExact(key)
                      || PyFloat_CheckExact(key) || PyBytes_CheckExact(key));
        }
        if (check) {
            PyObject *keys = PyDict_Keys(dict);
            PyObject *none = keys == NULL ? NULL : PyObject_CallOneArg(check_keys_fn, keys);
            Py_XDECREF(keys);
            if (none == NULL) {
                return -1;
            }
            Py_DECREF(none);
        }
    }
    unsigned char *p = room(out, 5);
    if (p == NULL) {
        return -1;
    }
    p[0] = MAP_EXT;
    put32(p + 1, (uint32_t)n);
    i = 0;
    Py_ssize_t written = 0;
    while (PyDict_Next(dict, &i, &key, &value)) {
        Py_INCREF(value);
        int rc = encode_item(out, key);
        rc = rc < 0 ? rc : encode_term(out, value);
        Py_DECREF(value);
        if (rc < 0) {
            return -1;
        }
        written++;
    }
    if (written != n || PyDict_GET_SIZE(dict) != n) {
        PyErr_SetNone(Fallback);
        return -1;
    }
    return 0;
}

static int write_tuple(Output *out, PyObject *tuple) {
    Py_ssize_t n = PyTuple_GET_SIZE(tuple);
    if (n > 0xFFFFFFFFLL) {
        PyErr_SetNone(Fallback);
        return -1;
    }
    unsigned char *p = room(out, n < 256 ? 2 : 5);
    if (p == NULL) {
        return -1;
    }
    if (n < 256) {
        p[0] = SMALL_TUPLE_EXT;
        p[1] = (unsigned char)n;
    } else {
        p[0] = LARGE_TUPLE_EXT;
        put32(p + 1, (uint32_t)n);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (encode_term(out, PyTuple_GET_ITEM(tuple, i)) < 0) {
            return -1;
        }
    }
    return 0;
}

static int write_charlist(Output *out, PyObject *text) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (n == 0) {
        unsigned char *p = room(out, 1);
        if (p == NULL) {
            return -1;
        }
        p[0] = NIL_EXT;
        return 0;
    }
    if (n > 0xFFFF || PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND) {
        return delegate_encode(out, text);
    }
    unsigned char *p = room(out, 3 + n);
    if (p == NULL) {
        return -1;
    }
    p[0] = STRING_EXT;
    p[1] = (unsigned char)(n >> 8);
    p[2] = (unsigned char)n;
    memcpy(p + 3, PyUnicode_1BYTE_DATA(text), n);
    return 0;
}

static int write_container(Output *out, PyObject *term, int (*write)(Output *, PyObject *)) {
    if (out->nesting >= MAX_C_NESTING) {
        PyErr_SetNone(Fallback);
        return -1;
    }
    if (Py_EnterRecursiveCall(" while encoding ETF")) {
        return -1;
    }
    out->nesting++;
    int rc = write(out, term);
    out->nesting--;
    Py_LeaveRecursiveCall();
    return rc;
}

static int encode_term(Output *out, PyObject *term) {
    PyTypeObject *type = Py_TYPE(term);
    if (type == &PyLong_Type) {
        return write_int(out, term);
    }
    if (type == (PyTypeObject *)atom_type) {
        return write_atom_text(out, term);
    }
    if (type == &PyBytes_Type) {
        return write_tagged(out, BINARY_EXT, PyBytes_AS_STRING(term), PyBytes_GET_SIZE(term));
    }
    if (type == &PyTuple_Type) {
        return write_container(out, term, write_tuple);
    }
    if (type == &PyList_Type) {
        return write_container(out, term, write_list);
    }
    if (type == &PyDict_Type) {
        return write_container(out, term, write_dict);
    }
    if (term == Py_True || term == Py_False || term == Py_None) {
        return write_atom_cstr(out, term == Py_True ? "true" : term == Py_False ? "false"
                                                                                : "undefined");
    }
    if (type == &PyFloat_Type) {
        double v = PyFloat_AS_DOUBLE(term);
        unsigned char *p;
        if (!isfinite(v)) {
            PyErr_SetNone(Fallback);
            return -1;
        }
        if ((p = room(out, 9)) == NULL) {
            return -1;
        }
        p[0] = NEW_FLOAT_EXT;
#if PY_VERSION_HEX >= 0x030B0000
        return PyFloat_Pack8(v, (char *)p + 1, 0);
#else
        return _PyFloat_Pack8(v, p + 1, 0);
#endif
    }
    if (type == &PyUnicode_Type) {
        Py_ssize_t n;
        const char *text = PyUnicode_AsUTF8AndSize(term, &n);
        return text == NULL ? -1 : write_tagged(out, BINARY_EXT, text, n);
    }
    if (type == (PyTypeObject *)charlist_type) {
        return write_charlist(out, term);
    }
    if (terms_ready) {
        if (type == (PyTypeObject *)pid_class.type) {
            return write_pid(out, term);
        }
        if (type == (PyTypeObject *)reference_class.type) {
            return write_reference(out, term);
        }
        if (type == (PyTypeObject *)improper_class.type) {
            return write_container(out, term, write_improper);
        }
        if (type == (PyTypeObject *)port_class.type) {
            return write_port(out, term);
        }
    }
    return delegate_encode(out, term);
}

static PyObject *encode(PyObject *self, PyObject *term) {
    if (!encoder_ready) {
        return fallback();
    }
    Output out = {PyBytes_FromStringAndSize(NULL, 64), 0, 0};
    if (out.bytes == NULL) {
        return NULL;
    }
    PyBytes_AS_STRING(out.bytes)[0] = (char)VERSION;
    out.len = 1;
    if (encode_term(&out, term) < 0) {
        Py_XDECREF(out.bytes);
        return as_fallback(NULL);
    }
    if (_PyBytes_Resize(&out.bytes, out.len) < 0) {
        return NULL;
    }
    return out.bytes;
}

/* Fill `cls` for `type` from its slots named in `names` (NULL: no such field): each must be an
   object slot (a member descriptor) of that very class. */
static int value_class(ValueClass *cls, PyObject *type, const char *const names[F_COUNT]) {
    if (!PyType_Check(type)) {
        PyErr_SetString(PyExc_TypeError, "setup_encoder: a class expected");
        return -1;
    }
    for (int i = 0; i < F_COUNT; i++) {
        cls->offset[i] = 0;
        if (names[i] == NULL) {
            continue;
        }
        PyObject *descr = PyDict_GetItemString(((PyTypeObject *)type)->tp_dict, names[i]);
        if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)
            || ((PyMemberDescrObject *)descr)->d_member->type != MEMBER_OBJECT_EX) {
            PyErr_Format(PyExc_TypeError, "setup_encoder: %R has no slot %s", type, names[i]);
            return -1;
        }
        cls->offset[i] = ((PyMemberDescrObject *)descr)->d_member->offset;
    }
    Py_INCREF(type);
    Py_XSETREF(cls->type, type);
    return 0;
}

static PyObject *setup_encoder(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "setup_encoder(any, check_distinct_keys, Atom, Pid, "
                                         "Reference, Port, ImproperList) expected");
        return NULL;
    }
    PyObject **slots[3] = {&any_fn, &check_keys_fn, &atom_type};
    for (int i = 0; i < 3; i++) {
        Py_INCREF(args[i]);
        Py_XSETREF(*slots[i], args[i]);
    }
    static const char *const pid_fields[F_COUNT] = {"node", "id", "serial", "creation", "_hash"};
    static const char *const ref_fields[F_COUNT] = {
        [F_NODE] = "node", [F_CREATION] = "creation", [F_HASH] = "_hash", [F_IDS] = "ids"};
    static const char *const port_fields[F_COUNT] = {"node", "id", NULL, "creation"};
    static const char *const improper_fields[F_COUNT] = {[F_ITEMS] = "items", [F_TAIL] = "tail"};
    terms_ready = 0;
    if (value_class(&pid_class, args[3], pid_fields) < 0
        || value_class(&reference_class, args[4], ref_fields) < 0
        || value_class(&port_class, args[5], port_fields) < 0
        || value_class(&improper_class, args[6], improper_fields) < 0) {
        return NULL;
    }
    terms_ready = 1;
    encoder_ready = charlist_type != NULL;
    if (!encoder_ready) {
        PyErr_SetString(PyExc_RuntimeError, "call setup() before setup_encoder()");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *setup(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 8 || !PyList_CheckExact(args[0]) || PyList_GET_SIZE(args[0]) != 256) {
        PyErr_SetString(PyExc_TypeError,
                        "setup(dispatch, atom, with_tail, to_map, charlist_type, budget, "
                        "over_budget, budget_error) expected");
        return NULL;
    }
    if (str_left == NULL && (str_left = PyUnicode_InternFromString("left")) == NULL) {
        return NULL;
    }
    PyObject **slots[8] = {NULL, &atom_fn, &with_tail_fn, &to_map_fn, &charlist_type,
                           &budget_tls, &over_budget_fn, &budget_error_type};
    for (int i = 1; i < 8; i++) {
        Py_INCREF(args[i]);
        Py_XSETREF(*slots[i], args[i]);
    }
    for (int i = 0; i < 256; i++) {
        Py_INCREF(PyList_GET_ITEM(args[0], i));
        Py_XSETREF(dispatch[i], PyList_GET_ITEM(args[0], i));
    }
    ready = 1;
    Py_RETURN_NONE;
}

static PyObject *set_budgeted(PyObject *self, PyObject *arg) {
    Py_ssize_t count;
    if (ssize_arg(arg, &count) < 0) {
        PyErr_SetString(PyExc_TypeError, "set_budgeted(count) expects an int");
        return NULL;
    }
    budgeted_count = count;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"decode_body", (PyCFunction)(void (*)(void))decode_body, METH_FASTCALL,
     "decode_body(data, offset, max_depth) -> (term, end); raises Fallback."},
    {"decode", (PyCFunction)(void (*)(void))decode, METH_FASTCALL,
     "decode(data, max_depth, max_size) -> term for an uncompressed term; raises Fallback."},
    {"setup", (PyCFunction)(void (*)(void))setup, METH_FASTCALL,
     "setup(dispatch, atom, with_tail, to_map, charlist_type, budget, over_budget, "
     "budget_error): the pure decoder's helpers."},
    {"set_budgeted", (PyCFunction)set_budgeted, METH_O,
     "set_budgeted(count): how many budgeted decodes run now (decoder._budgeted)."},
    {"encode", (PyCFunction)encode, METH_O,
     "encode(term) -> uncompressed ETF bytes with the version byte; raises Fallback."},
    {"read_frames", (PyCFunction)(void (*)(void))read_frames, METH_FASTCALL,
     "read_frames(data, pos, max_frame, max_body, max_depth, no_message, out) -> pos: the "
     "common frames of a read, decoded into out, up to the first one left to Python."},
    {"setup_encoder", (PyCFunction)(void (*)(void))setup_encoder, METH_FASTCALL,
     "setup_encoder(any, check_distinct_keys, Atom, Pid, Reference, Port, ImproperList): the pure "
     "encoder's helpers and the classes built and written here."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups",
    "Compiled hot path of the ETF codec; used through beamlink.etf._accelerated.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL) {
        return NULL;
    }
    str_pid_name = PyUnicode_InternFromString("Pid");
    str_reference_name = PyUnicode_InternFromString("Reference");
    if (!str_pid_name || !str_reference_name) {
        Py_DECREF(mod);
        return NULL;
    }
    Fallback = PyErr_NewException("beamlink.etf._speedups.Fallback", NULL, NULL);
    if (Fallback == NULL || PyModule_AddObjectRef(mod, "Fallback", Fallback) < 0
        || PyModule_AddIntConstant(mod, "API_VERSION", API_VERSION) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
