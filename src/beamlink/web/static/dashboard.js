// The beamlink dashboard page: renders the observer's server-sent events as a graph, node cards
// with small rate charts, and an event log. Every string that comes from a node reaches the DOM
// through textContent or setAttribute, never as markup.
"use strict";
(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_LOG = 300;
  const state = { nodes: {}, history: {}, historySeconds: 300, observer: "" };
  const cards = new Map();
  const graphNodes = new Map();

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    return node;
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return "n/a";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
  }

  function fmtRate(n) {
    if (n === null || n === undefined) return "n/a";
    return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
  }

  function fmtDuration(s) {
    if (s === null || s === undefined) return "n/a";
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (d) return `${d}d ${h}h ${m}m`;
    if (h) return `${h}h ${m}m ${sec}s`;
    return m ? `${m}m ${sec}s` : `${sec}s`;
  }

  function fmtTime(t) {
    return new Date(t * 1000).toLocaleTimeString([], { hour12: false });
  }

  const kindBadge = { python: "py", erlang: "erl", elixir: "ex", hidden: "h" };

  // ---------------------------------------------------------------- event stream

  function handle(msg) {
    if (msg.type === "snapshot") {
      state.observer = msg.observer;
      state.historySeconds = msg.history_seconds;
      state.history = msg.history || {};
      document.getElementById("log").replaceChildren();
      addEvents(msg.events || []);
    } else {
      for (const [name, point] of Object.entries(msg.samples || {})) {
        (state.history[name] = state.history[name] || []).push(point);
      }
      addEvents(msg.events || []);
    }
    state.nodes = msg.nodes || {};
    for (const name of Object.keys(state.history)) {
      if (!(name in state.nodes)) delete state.history[name];
    }
    render();
  }

  function addEvents(events) {
    const log = document.getElementById("log");
    for (const event of events) {
      const item = el("li", event.error ? "error" : "");
      item.dataset.kind = event.kind;
      item.append(el("time", "", fmtTime(event.at)), document.createTextNode(event.text));
      log.prepend(item);
    }
    while (log.children.length > MAX_LOG) log.lastChild.remove();
  }

  function connect() {
    const status = document.getElementById("status");
    const source = new EventSource("/events");
    source.onopen = () => { status.textContent = "live"; status.className = "status live"; };
    source.onerror = () => {
      status.textContent = "reconnecting…";
      status.className = "status lost";
    };
    source.onmessage = (event) => handle(JSON.parse(event.data));
  }

  // ---------------------------------------------------------------- rendering

  function render() {
    const nodes = Object.values(state.nodes);
    const up = nodes.filter((n) => n.state !== "down");
    const count = (kind) => up.filter((n) => n.kind === kind).length;
    document.getElementById("summary").textContent =
      `${up.length} nodes: ${count("python")} Python, ${count("erlang")} Erlang, ` +
      `${count("elixir")} Elixir, ${count("hidden")} hidden; watched from ${state.observer}`;
    renderGraph(nodes);
    renderCards(nodes);
  }

  function layout(nodes) {
    const positions = new Map();
    const main = nodes.filter((n) => n.kind !== "hidden").sort((a, b) => a.name < b.name ? -1 : 1);
    const hidden = nodes.filter((n) => n.kind === "hidden").sort((a, b) => a.name < b.name ? -1 : 1);
    const cx = 320, cy = 160, r = main.length > 1 ? Math.min(125, 50 + main.length * 12) : 0;
    main.forEach((n, i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / main.length;
      positions.set(n.name, [cx + r * Math.cos(a), cy + r * Math.sin(a)]);
    });
    hidden.forEach((n, i) => {
      positions.set(n.name, [80 + ((i + 0.5) * 480) / hidden.length, 370]);
    });
    return positions;
  }

  function graphNode(node) {
    let g = graphNodes.get(node.name);
    if (!g) {
      g = svg("g", { class: "gnode" });
      g.dataset.node = node.name;
      graphNodes.set(node.name, g);
    }
    if (g.dataset.kind !== node.kind) {
      g.replaceChildren();
      g.dataset.kind = node.kind;
      const color = `var(--${node.kind})`;
      const shape = node.kind === "python" || node.kind === "hidden"
        ? svg("circle", { r: node.kind === "hidden" ? 11 : 17, fill: color })
        : svg("rect", { x: -16, y: -16, width: 32, height: 32, rx: 5, fill: color });
      const badge = svg("text", { class: "badge", "text-anchor": "middle", dy: 4 });
      badge.textContent = kindBadge[node.kind] || "?";
      const label = svg("text", { "text-anchor": "middle", dy: node.kind === "hidden" ? 26 : 32 });
      label.textContent = node.name;
      const title = svg("title");
      title.textContent = node.name;
      g.append(shape, badge, label, title);
    }
    g.classList.toggle("down", node.state === "down");
    g.dataset.state = node.state;
    return g;
  }

  function renderGraph(nodes) {
    const graph = document.getElementById("graph");
    const positions = layout(nodes);
    const layer = [];
    if (nodes.some((n) => n.kind === "hidden")) {
      layer.push(svg("rect", { class: "hidden-zone", x: 20, y: 335, width: 600, height: 78, rx: 6 }));
      const label = svg("text", { class: "zone-label", x: 28, y: 350 });
      label.textContent = "hidden nodes";
      layer.push(label);
    }
    const seen = new Set();
    for (const node of nodes) {
      if (node.state === "down") continue;
      for (const peer of node.peers || []) {
        const key = [node.name, peer.name].sort().join("\u0000");
        const a = positions.get(node.name), b = positions.get(peer.name);
        if (seen.has(key) || !a || !b) continue;
        seen.add(key);
        const other = state.nodes[peer.name];
        if (other && other.state === "down") continue;
        const hidden = peer.hidden || node.kind === "hidden" || (other && other.kind === "hidden");
        layer.push(svg("line", { class: hidden ? "edge hidden" : "edge",
                                 x1: a[0], y1: a[1], x2: b[0], y2: b[1] }));
      }
    }
    const names = new Set(nodes.map((n) => n.name));
    for (const name of graphNodes.keys()) if (!names.has(name)) graphNodes.delete(name);
    for (const node of nodes) {
      const g = graphNode(node);
      const [x, y] = positions.get(node.name);
      g.setAttribute("transform", `translate(${x.toFixed(1)},${y.toFixed(1)})`);
      layer.push(g);
    }
    graph.replaceChildren(...layer);
  }

  function field(dl, label, className) {
    dl.append(el("dt", "", label));
    const dd = el("dd", className);
    dl.append(dd);
    return dd;
  }

  function chart(title) {
    const box = el("div", "chart");
    const head = el("div", "title");
    const name = el("span", "", `${title} `);
    const vin = el("span", "in");
    const vout = el("span", "out");
    head.append(name, vin, document.createTextNode(" / "), vout);
    const plot = svg("svg", { viewBox: "0 0 300 40", preserveAspectRatio: "none" });
    const lin = svg("polyline", { class: "in" });
    const lout = svg("polyline", { class: "out" });
    plot.append(lin, lout);
    box.append(head, plot);
    return { box, vin, vout, lin, lout };
  }

  function makeCard(name) {
    const card = el("article", "card");
    card.dataset.node = name;
    const title = el("h3", "name", name);
    const sub = el("div", "sub");
    const figures = el("dl");
    const links = el("dl");
    const parts = {
      card, title, sub,
      uptime: field(figures, "uptime", "f-uptime"),
      processes: field(figures, "processes", "f-processes"),
      memory: field(figures, "memory", "f-memory"),
      lag: field(figures, "loop lag", "f-lag"),
      msgs: chart("messages/s in / out:"),
      bytes: chart("bytes/s in / out:"),
      peers: field(links, "connections", "f-peers"),
      downs: field(links, "last nodedowns", "f-downs"),
      registered: field(links, "registered", "f-registered"),
    };
    card.append(title, sub, figures, parts.msgs.box, parts.bytes.box, links);
    return parts;
  }

  function plot(parts, points, inIndex, outIndex, now, format) {
    const span = state.historySeconds;
    const recent = points.filter((p) => now - p[0] <= span);
    const max = Math.max(1e-9, ...recent.map((p) => Math.max(p[inIndex], p[outIndex])));
    const line = (index) => recent.map((p) => {
      const x = 300 - ((now - p[0]) / span) * 300;
      const y = 38 - (p[index] / max) * 34;
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    }).join(" ");
    parts.lin.setAttribute("points", line(inIndex));
    parts.lout.setAttribute("points", line(outIndex));
    const last = recent[recent.length - 1];
    parts.vin.textContent = last ? format(last[inIndex]) : "n/a";
    parts.vout.textContent = last ? format(last[outIndex]) : "n/a";
  }

  function renderCards(nodes) {
    const container = document.getElementById("cards");
    const now = Date.now() / 1000;
    const order = [...nodes].sort((a, b) =>
      (a.kind === "hidden") - (b.kind === "hidden") || (a.name < b.name ? -1 : 1));
    for (const name of [...cards.keys()]) {
      if (!(name in state.nodes)) { cards.get(name).card.remove(); cards.delete(name); }
    }
    for (const node of order) {
      let parts = cards.get(node.name);
      if (!parts) { parts = makeCard(node.name); cards.set(node.name, parts); }
      const card = parts.card;
      card.dataset.kind = node.kind;
      card.dataset.state = node.state;
      const kind = { python: "Python (beamlink)", erlang: "Erlang", elixir: "Elixir",
                     hidden: "hidden node (not watched)" }[node.kind] || node.kind;
      let sub = `${kind}${node.version ? " \u00b7 " + node.version : ""}`;
      if (node.state === "down") {
        sub += ` \u00b7 left ${fmtDuration(now - node.down_since)} ago (${node.down_reason})`;
      }
      parts.sub.textContent = sub;
      parts.uptime.textContent = fmtDuration(node.uptime);
      parts.processes.textContent = node.processes ?? "n/a";
      parts.memory.textContent = fmtBytes(node.memory);
      parts.lag.textContent = node.loop_lag
        ? `${(node.loop_lag.last * 1000).toFixed(1)} ms (max ${(node.loop_lag.max * 1000).toFixed(1)} ms)`
        : "n/a";
      const names = node.registered || [];
      parts.registered.title = names.join(", ");
      parts.registered.textContent = names.length
        ? `${names.length}: ${names.slice(0, 12).join(", ")}${names.length > 12 ? ", \u2026" : ""}`
        : (node.kind === "hidden" ? "n/a" : "none");
      const peers = (node.peers || []).map((p) =>
        `${p.name} ${p.state || "up"}${p.hidden ? " (hidden)" : ""}`);
      parts.peers.textContent = peers.length ? peers.join("; ") : "none";
      const downs = Object.entries(node.downs || {}).slice(-5).reverse().map(([peer, d]) =>
        `${peer}: ${d.reason}${d.detail ? " " + d.detail : ""}, ${fmtDuration(now - d.at)} ago`);
      parts.downs.textContent = downs.length ? downs.join("; ")
        : (node.kind === "python" ? "none" : "n/a");
      const rates = node.rates || {};
      for (const key of ["msgs_in", "msgs_out", "bytes_in", "bytes_out"]) {
        card.dataset[key.replace("_", "")] = rates[key] ?? "";
      }
      const points = state.history[node.name] || [];
      const nowMono = points.length ? points[points.length - 1][0] : 0;
      plot(parts.msgs, points, 1, 2, nowMono, fmtRate);
      plot(parts.bytes, points, 3, 4, nowMono, (v) => fmtBytes(v));
      container.append(card);
    }
  }

  connect();
})();
