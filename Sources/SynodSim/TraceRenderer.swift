import SynodCheck

/// Draws a traced run (`SimulationReport.trace`) as one self-contained HTML file: a
/// space-time diagram with a lane per replica and per client, virtual time across, messages
/// as arrows, faults, roles, syncs and commits as marks, client operations as intervals. No
/// network, no external scripts or fonts: the data and the drawing code are in the file.
public enum TraceRenderer {
    /// What to draw and what to call it.
    public struct Title: Sendable {
        public var protocolName: String
        public var seed: UInt64
        public var command: String
        public init(protocolName: String, seed: UInt64, command: String) {
            self.protocolName = protocolName
            self.seed = seed
            self.command = command
        }
    }

    /// The page for `report` (which must carry a trace), cut to `window` (virtual
    /// nanoseconds) when given.
    public static func html(_ report: SimulationReport, title: Title, window: ClosedRange<UInt64>? = nil) -> String {
        let data = self.data(report, title: title, window: window)
        return self.template.replacing("/*DATA*/", with: data.replacing("</", with: "<\\/"))
    }

    /// The run as JSON: the input of the page's drawing code.
    static func data(_ report: SimulationReport, title: Title, window: ClosedRange<UInt64>?) -> String {
        let trace = report.trace ?? SimulationTrace(nodes: 0)
        let span = window ?? 0...max(trace.endTime, 1)
        func inside(_ from: UInt64, _ to: UInt64) -> Bool { from <= span.upperBound && to >= span.lowerBound }
        var json = JSONWriter()
        json.open("{")
        json.key("title"); json.string("\(title.protocolName), seed \(title.seed)")
        json.key("command"); json.string(title.command)
        json.key("nodes"); json.number(trace.nodes)
        json.key("from"); json.number(span.lowerBound)
        json.key("to"); json.number(min(span.upperBound, max(trace.endTime, 1)))
        json.key("end"); json.number(trace.endTime)
        json.key("fingerprint"); json.string(String(report.fingerprint, radix: 16))
        let clients = Array(Set(report.history.map(\.client))).sorted()
        json.key("clients"); json.open("[")
        for client in clients { json.number(client) }
        json.close("]")
        json.key("messages"); json.open("[")
        for message in trace.messages where inside(message.sent, message.arrives) {
            json.open("[")
            json.number(message.from); json.number(message.to); json.number(message.sent); json.number(message.arrives)
            json.string(message.fate.rawValue); json.number(message.duplicate ? 1 : 0); json.number(message.delayed ? 1 : 0)
            json.string(message.summary)
            json.close("]")
        }
        json.close("]")
        json.key("marks"); json.open("[")
        for mark in trace.marks where inside(mark.time, mark.end ?? trace.endTime) {
            json.open("[")
            json.number(mark.time); json.number(mark.end.map { Int($0) } ?? -1); json.number(mark.node ?? -1)
            json.string(mark.kind); json.string(mark.detail)
            json.close("]")
        }
        json.close("]")
        // The checker's explanation, when the history is not linearizable.
        let violation = report.linearizability?.violation
        func same(_ left: HistoryOperation, _ right: HistoryOperation) -> Bool {
            left.client == right.client && left.call == right.call && left.kind == right.kind && left.key == right.key
        }
        json.key("ops"); json.open("[")
        for operation in report.history where inside(operation.call, operation.returnTime ?? trace.endTime) {
            var role = ""
            if let violation {
                if same(operation, violation.unplaced) {
                    role = "unplaced"
                } else if violation.longestLinearization.contains(where: { same($0, operation) }) {
                    role = "linearized"
                }
            }
            json.open("[")
            json.number(operation.client); json.string(operation.summary); json.number(operation.call)
            json.number(operation.isPending ? -1 : Int(operation.returnTime!))
            json.string(operation.isPending ? "unknown" : "ok"); json.string(operation.kind.rawValue); json.string(role)
            json.close("]")
        }
        json.close("]")
        json.key("verdict")
        if let problem = report.violations.first {
            json.string("invariant broken: \(problem.description)")
        } else if let result = report.linearizability {
            json.string(result.verdict == .linearizable
                ? "linearizable (\(report.history.count) operations)"
                : "NOT linearizable: \(violation.map { String(describing: $0) } ?? result.reason ?? "")")
        } else {
            json.string("history not checked")
        }
        json.key("failed"); json.number(report.isClean ? 0 : 1)
        json.close("}")
        return json.text
    }

    /// Just enough JSON: arrays and objects of numbers and strings.
    struct JSONWriter {
        var text = ""
        var needsComma = false

        mutating func separate() {
            if self.needsComma { self.text += "," }
            self.needsComma = true
        }
        mutating func open(_ bracket: String) {
            self.separate()
            self.text += bracket
            self.needsComma = false
        }
        mutating func close(_ bracket: String) {
            self.text += bracket
            self.needsComma = true
        }
        mutating func key(_ name: String) {
            self.separate()
            self.text += "\"\(name)\":"
            self.needsComma = false
        }
        mutating func number<N: BinaryInteger>(_ value: N) {
            self.separate()
            self.text += String(value)
        }
        mutating func string(_ value: String) {
            self.separate()
            self.text += "\""
            for scalar in value.unicodeScalars {
                switch scalar {
                case "\"": self.text += "\\\""
                case "\\": self.text += "\\\\"
                case "\n": self.text += "\\n"
                case "\r": self.text += "\\r"
                case "\t": self.text += "\\t"
                case "\u{2028}": self.text += "\\u2028"
                case "\u{2029}": self.text += "\\u2029"
                default:
                    if scalar.value < 0x20 {
                        let hex = String(scalar.value, radix: 16)
                        self.text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                    } else {
                        self.text.unicodeScalars.append(scalar)
                    }
                }
            }
            self.text += "\""
        }
    }

    /// The page: styles, the data (in place of the DATA comment) and the drawing code.
    static let template = #"""
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Synod run</title>
<style>
  body { font: 13px system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2430; background: #fbfbfd; }
  header { padding: 10px 16px 6px; border-bottom: 1px solid #dde1ea; }
  h1 { font-size: 16px; margin: 0 0 4px; }
  #verdict { margin: 2px 0; white-space: pre-wrap; }
  #verdict.bad { color: #b3261e; font-weight: 600; }
  #command { font-family: ui-monospace, monospace; font-size: 11px; color: #5a6372; }
  #legend span { display: inline-block; margin-right: 12px; font-size: 11px; }
  #legend i { display: inline-block; width: 18px; height: 8px; margin-right: 4px; vertical-align: middle; }
  #bar { padding: 4px 16px; font-size: 12px; color: #5a6372; }
  #bar button { font: inherit; margin-right: 6px; }
  #chart { position: relative; overflow: hidden; cursor: grab; border-top: 1px solid #eef0f5; }
  #chart.dragging { cursor: grabbing; }
  svg { display: block; user-select: none; }
  .lane-label { font: 12px ui-monospace, monospace; fill: #1d2430; }
  .axis { font: 10px ui-monospace, monospace; fill: #6b7383; }
  #tip { position: fixed; pointer-events: none; background: #1d2430; color: #fff; padding: 6px 8px; border-radius: 4px;
         font: 11px ui-monospace, monospace; max-width: 640px; white-space: pre-wrap; display: none; z-index: 2; }
  #details { margin: 6px 16px 16px; padding: 8px 10px; background: #fff; border: 1px solid #dde1ea; border-radius: 4px;
             font: 12px ui-monospace, monospace; white-space: pre-wrap; min-height: 2em; }
</style>
</head>
<body>
<header>
  <h1 id="title"></h1>
  <div id="verdict"></div>
  <div id="command"></div>
  <div id="legend">
    <span><i style="background:#3b6fb6"></i>message</span>
    <span><i style="background:#d93025"></i>lost</span>
    <span><i style="background:#e8710a"></i>cut by a partition</span>
    <span><i style="background:#9aa0a6"></i>to a crashed node</span>
    <span><i style="background:#8e44ad"></i>duplicate</span>
    <span><i style="background:#0b8a8a"></i>delayed (reordered)</span>
    <span><i style="background:#f6c343"></i>leader</span>
    <span><i style="background:#cfe3ff"></i>candidate</span>
    <span><i style="background:#3c4043"></i>crashed</span>
    <span><i style="background:rgba(232,113,10,.18)"></i>partition</span>
    <span><i style="background:#7cc47f"></i>operation ok</span>
    <span><i style="background:#c4c7cc"></i>outcome unknown</span>
    <span><i style="background:#fff;border:2px solid #d93025"></i>cannot be placed</span>
  </div>
</header>
<div id="bar"><button id="fit">whole run</button><button id="zoomIn">zoom in</button><button id="zoomOut">zoom out</button>
  <span id="range"></span> · wheel zooms, drag pans, click an element for its details</div>
<div id="chart"></div>
<div id="details">Click a message, a mark or an operation.</div>
<div id="tip"></div>
<script type="application/json" id="data">/*DATA*/</script>
<script>
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("data").textContent);
  const nodes = D.nodes, clients = D.clients;
  const nodeHeight = 40, clientHeight = 24, top = 22, left = 92, gap = 14;
  const clientLane = new Map(clients.map((c, i) => [c, i]));
  const laneCount = nodes + clients.length;
  const height = top + nodes * nodeHeight + clients.length * clientHeight + (clients.length ? gap : 0) + 24;
  function laneY(lane) {
    return lane < nodes ? top + lane * nodeHeight + nodeHeight / 2
      : top + nodes * nodeHeight + gap + (lane - nodes) * clientHeight + clientHeight / 2;
  }
  function nodeY(node) { return laneY(node); }
  function clientY(client) { return laneY(nodes + clientLane.get(client)); }
  const chart = document.getElementById("chart");
  let width = Math.max(600, chart.clientWidth || 1200);
  let t0 = D.from, t1 = Math.max(D.to, D.from + 1);
  const full = [t0, t1];
  // A window to open at, in virtual milliseconds: page.html#t=FROM..TO.
  const asked = /#t=([0-9.]+)\.\.([0-9.]+)/.exec(location.hash);
  if (asked && +asked[1] < +asked[2]) { t0 = +asked[1] * 1e6; t1 = +asked[2] * 1e6; }
  function x(t) { return left + (t - t0) / (t1 - t0) * (width - left - 12); }
  function ms(t) { return (t / 1e6).toFixed(t1 - t0 < 2e7 ? 3 : 1) + " ms"; }
  function esc(s) { return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;"); }
  const fateColour = { delivered: "#3b6fb6", lost: "#d93025", cut: "#e8710a", down: "#9aa0a6", "in-flight": "#b0b7c3" };

  // Role intervals per node, from the role marks, ended by the next role change or a crash.
  const roles = [];
  const byNode = new Map();
  for (const m of D.marks) {
    if (m[2] < 0) continue;
    if (!byNode.has(m[2])) byNode.set(m[2], []);
    byNode.get(m[2]).push(m);
  }
  for (const [node, marks] of byNode) {
    let open = null;
    for (const m of marks) {
      const k = m[3];
      if (k === "leader" || k === "candidate" || k === "follower" || k === "crash") {
        if (open) { open.end = m[0]; roles.push(open); open = null; }
        if (k === "leader" || k === "candidate") open = { node: node, kind: k, start: m[0], end: D.end, detail: m[4] };
      }
    }
    if (open) roles.push(open);
  }

  const items = [];  // what a mouse event can point at: [kind, index]
  function render() {
    const parts = [];
    items.length = 0;
    const w = width;
    parts.push('<svg xmlns="http://www.w3.org/2000/svg" width="' + w + '" height="' + height + '">');
    parts.push('<defs><marker id="arrow" viewBox="0 0 6 6" refX="6" refY="3" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0L6,3L0,6z" fill="context-stroke"/></marker></defs>');
    // Lanes.
    for (let lane = 0; lane < laneCount; lane++) {
      const y = laneY(lane);
      const name = lane < nodes ? "n" + (lane + 1) : "client " + clients[lane - nodes];
      parts.push('<line x1="' + left + '" x2="' + (w - 12) + '" y1="' + y + '" y2="' + y + '" stroke="#d5d9e2" class="lane"/>');
      parts.push('<text class="lane-label" x="8" y="' + (y + 4) + '">' + name + '</text>');
    }
    // Time axis.
    const step = niceStep((t1 - t0) / 8);
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      const xt = x(t);
      parts.push('<line x1="' + xt + '" x2="' + xt + '" y1="' + (top - 6) + '" y2="' + (height - 20) + '" stroke="#eef0f5"/>');
      parts.push('<text class="axis" x="' + (xt + 2) + '" y="' + (top - 8) + '">' + ms(t) + '</text>');
    }
    const visible = (a, b) => b >= t0 && a <= t1;
    // Cluster-wide and per-node intervals.
    D.marks.forEach((m, i) => {
      const end = m[1] < 0 ? D.end : m[1];
      if (!visible(m[0], end)) return;
      const x0 = Math.max(left, x(m[0])), x1 = Math.min(w - 12, x(end));
      if (m[3] === "partition") {
        parts.push('<rect data-k="m" data-i="' + i + '" x="' + x0 + '" y="' + (top - 4) + '" width="' + Math.max(2, x1 - x0) + '" height="' + (nodes * nodeHeight) + '" fill="rgba(232,113,10,.13)" stroke="rgba(232,113,10,.5)"/>');
      } else if (m[3] === "crash" && m[2] >= 0) {
        const y = nodeY(m[2]);
        parts.push('<rect data-k="m" data-i="' + i + '" x="' + x0 + '" y="' + (y - 6) + '" width="' + Math.max(2, x1 - x0) + '" height="12" fill="#3c4043" rx="2"/>');
      } else if ((m[3] === "isolated" || m[3] === "slow") && m[2] >= 0) {
        const y = nodeY(m[2]);
        const fill = m[3] === "slow" ? "rgba(11,138,138,.18)" : "rgba(142,68,173,.18)";
        parts.push('<rect data-k="m" data-i="' + i + '" x="' + x0 + '" y="' + (y - 11) + '" width="' + Math.max(2, x1 - x0) + '" height="22" fill="' + fill + '"/>');
      }
    });
    for (const r of roles) {
      if (!visible(r.start, r.end)) continue;
      const x0 = Math.max(left, x(r.start)), x1 = Math.min(w - 12, x(r.end));
      const y = nodeY(r.node);
      parts.push('<rect x="' + x0 + '" y="' + (y - 4) + '" width="' + Math.max(1, x1 - x0) + '" height="8" fill="' + (r.kind === "leader" ? "#f6c343" : "#cfe3ff") + '" opacity=".9"/>');
    }
    // Messages.
    let arrows = 0;
    D.messages.forEach((m, i) => {
      if (!visible(m[2], m[3])) return;
      arrows++;
      const colour = m[5] ? "#8e44ad" : (m[6] && m[4] === "delivered" ? "#0b8a8a" : fateColour[m[4]]);
      const dash = m[4] === "delivered" || m[4] === "in-flight" ? "" : ' stroke-dasharray="4 3"';
      parts.push('<line class="msg" data-k="g" data-i="' + i + '" x1="' + x(m[2]) + '" y1="' + nodeY(m[0]) + '" x2="' + x(m[3]) + '" y2="' + nodeY(m[1]) + '" stroke="' + colour + '" stroke-width="1" opacity=".75"' + dash + ' marker-end="url(#arrow)"/>');
    });
    // Moments at nodes and cluster-wide.
    D.marks.forEach((m, i) => {
      if (m[0] < t0 || m[0] > t1) return;
      const xm = x(m[0]);
      const y = m[2] >= 0 ? nodeY(m[2]) : top;
      switch (m[3]) {
        case "sync": parts.push('<line data-k="m" data-i="' + i + '" x1="' + xm + '" x2="' + xm + '" y1="' + (y + 6) + '" y2="' + (y + 11) + '" stroke="#5f6b7a"/>'); break;
        case "commit": parts.push('<circle data-k="m" data-i="' + i + '" cx="' + xm + '" cy="' + (y - 9) + '" r="2.2" fill="#188038"/>'); break;
        case "torn-write": parts.push('<path data-k="m" data-i="' + i + '" d="M' + xm + ',' + (y - 12) + 'l5,9h-10z" fill="#d93025"/>'); break;
        case "mid-write": parts.push('<circle data-k="m" data-i="' + i + '" cx="' + xm + '" cy="' + y + '" r="4" fill="none" stroke="#d93025" stroke-width="2"/>'); break;
        case "transfer": case "membership": parts.push('<path data-k="m" data-i="' + i + '" d="M' + xm + ',' + (y - 7) + 'l5,5l-5,5l-5,-5z" fill="#8e44ad"/>'); break;
        case "leader": case "candidate": case "follower": parts.push('<line data-k="m" data-i="' + i + '" x1="' + xm + '" x2="' + xm + '" y1="' + (y - 8) + '" y2="' + (y + 8) + '" stroke="' + (m[3] === "leader" ? "#b7860b" : "#7aa7e0") + '" stroke-width="2"/>'); break;
        case "faults-end": parts.push('<line data-k="m" data-i="' + i + '" x1="' + xm + '" x2="' + xm + '" y1="' + top + '" y2="' + (height - 20) + '" stroke="#188038" stroke-dasharray="6 4"/><text class="axis" x="' + (xm + 3) + '" y="' + (height - 8) + '">faults stop</text>'); break;
        case "violation": parts.push('<line class="violation" data-k="m" data-i="' + i + '" x1="' + xm + '" x2="' + xm + '" y1="' + top + '" y2="' + (height - 20) + '" stroke="#d93025" stroke-width="3"/><text x="' + (xm + 4) + '" y="' + (height - 6) + '" fill="#d93025" font-weight="600">invariant broken here</text>'); break;
      }
    });
    // Client operations.
    D.ops.forEach((o, i) => {
      const end = o[3] < 0 ? D.end : o[3];
      if (!visible(o[2], end) || !clientLane.has(o[0])) return;
      const y = clientY(o[0]);
      const x0 = Math.max(left, x(o[2])), x1 = Math.min(w - 12, x(end));
      const fill = o[4] === "ok" ? (o[5] === "get" ? "#a8c7fa" : "#7cc47f") : "#c4c7cc";
      const stroke = o[6] === "unplaced" ? ' stroke="#d93025" stroke-width="3"' : (o[6] === "linearized" ? ' stroke="#e8710a" stroke-width="1.5"' : "");
      parts.push('<rect class="op' + (o[6] ? " " + o[6] : "") + '" data-k="o" data-i="' + i + '" x="' + x0 + '" y="' + (y - 8) + '" width="' + Math.max(2, x1 - x0) + '" height="16" rx="3" fill="' + fill + '"' + stroke + '/>');
      if (x1 - x0 > 60) parts.push('<text x="' + (x0 + 3) + '" y="' + (y + 4) + '" font-size="10" pointer-events="none">' + esc(o[5]) + '</text>');
    });
    parts.push("</svg>");
    chart.innerHTML = parts.join("");
    document.getElementById("range").textContent = ms(t0) + " – " + ms(t1);
    document.body.setAttribute("data-lanes", String(laneCount));
    document.body.setAttribute("data-arrows", String(arrows));
  }
  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
    for (const f of [1, 2, 5, 10]) if (f * p >= raw) return f * p;
    return 10 * p;
  }
  function describe(kind, i) {
    if (kind === "g") {
      const m = D.messages[i];
      return "message n" + (m[0] + 1) + " → n" + (m[1] + 1) + ", sent " + ms(m[2]) + ", " + (m[4] === "lost" ? "lost by the network" : m[4] === "cut" ? "cut by a partition on arrival at " + ms(m[3]) : m[4] === "down" ? "arrived at " + ms(m[3]) + " at a crashed node" : m[4] === "in-flight" ? "still in flight at the end" : "delivered at " + ms(m[3])) + (m[5] ? ", a duplicate" : "") + (m[6] ? ", held back (reordering)" : "") + "\n" + m[7];
    }
    if (kind === "m") {
      const m = D.marks[i];
      return m[3] + " at " + ms(m[0]) + (m[1] >= 0 ? " until " + ms(m[1]) : "") + (m[2] >= 0 ? ", n" + (m[2] + 1) : "") + "\n" + m[4];
    }
    const o = D.ops[i];
    return o[1] + (o[6] === "unplaced" ? "\nthe checker cannot place this operation" : o[6] === "linearized" ? "\nin the checker's longest partial linearization" : "");
  }
  const tip = document.getElementById("tip");
  chart.addEventListener("mousemove", (e) => {
    const k = e.target.getAttribute && e.target.getAttribute("data-k");
    if (!k || dragging) { tip.style.display = "none"; return; }
    tip.textContent = describe(k, +e.target.getAttribute("data-i"));
    tip.style.display = "block";
    tip.style.left = Math.min(e.clientX + 12, window.innerWidth - 660) + "px";
    tip.style.top = (e.clientY + 14) + "px";
  });
  chart.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  chart.addEventListener("click", (e) => {
    const k = e.target.getAttribute && e.target.getAttribute("data-k");
    if (k && !moved) document.getElementById("details").textContent = describe(k, +e.target.getAttribute("data-i"));
  });
  function zoom(factor, at) {
    const t = t0 + (at - left) / (width - left - 12) * (t1 - t0);
    const span = Math.max(1000, (t1 - t0) * factor);
    const ratio = (t - t0) / (t1 - t0);
    t0 = t - ratio * span; t1 = t0 + span;
    render();
  }
  chart.addEventListener("wheel", (e) => {
    e.preventDefault();
    const rect = chart.getBoundingClientRect();
    zoom(e.deltaY > 0 ? 1.25 : 0.8, e.clientX - rect.left);
  }, { passive: false });
  let dragging = false, moved = false, startX = 0, start = [0, 0];
  chart.addEventListener("mousedown", (e) => { dragging = true; moved = false; startX = e.clientX; start = [t0, t1]; chart.classList.add("dragging"); });
  window.addEventListener("mousemove", (e) => {
    if (!dragging) return;
    const dx = e.clientX - startX;
    if (Math.abs(dx) > 2) moved = true;
    const dt = dx / (width - left - 12) * (start[1] - start[0]);
    t0 = start[0] - dt; t1 = start[1] - dt;
    render();
  });
  window.addEventListener("mouseup", () => { dragging = false; chart.classList.remove("dragging"); });
  document.getElementById("fit").onclick = () => { t0 = full[0]; t1 = full[1]; render(); };
  document.getElementById("zoomIn").onclick = () => zoom(0.5, (width + left) / 2);
  document.getElementById("zoomOut").onclick = () => zoom(2, (width + left) / 2);
  window.addEventListener("resize", () => { width = Math.max(600, chart.clientWidth || 1200); render(); });
  document.getElementById("title").textContent = "Synod: " + D.title;
  document.getElementById("command").textContent = D.command + "   (fingerprint " + D.fingerprint + ")";
  const verdict = document.getElementById("verdict");
  verdict.textContent = D.verdict;
  if (D.failed) verdict.className = "bad";
  render();
  document.body.setAttribute("data-status", "ok");
})();
</script>
</body>
</html>
"""#
}
