// The built-in dashboard: fetches the JSON endpoints (see /openapi.json) and draws them with
// Chart.js (vendored). Refreshes without reloading the page. Text goes in via textContent.
"use strict";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
const charts = {};
const $ = (id) => document.getElementById(id);

const pct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1) + " %");
const secs = (v) => (v === null || v === undefined ? "–" : v.toFixed(1) + " s");
const count = (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US"));
const clock = (ms) => new Date(ms).toISOString().slice(11, 19);

function setValue(id, text, raw) {
  const el = $(id);
  el.textContent = text;
  el.dataset.value = raw === null || raw === undefined ? "" : String(raw);
}

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) {
    throw new Error(`${path}: ${body.error || response.status} ${body.detail || ""}`);
  }
  return body;
}

function chart(id, config) {
  if (charts[id]) {
    charts[id].data = config.data;
    charts[id].options = config.options; // the time axis follows the window
    charts[id].update("none");
    return;
  }
  charts[id] = new Chart($(id), config);
}

// The selected window, ending now (ms): one point does not stretch the axis over hours.
function timeAxis() {
  const now = Date.now();
  return {
    type: "linear",
    min: now - Number($("window").value) * 1020, // + 2 %: the first bucket starts before
    max: now,
    ticks: { callback: (v) => clock(v), maxTicksLimit: 8 },
  };
}

function drawTrend(trend) {
  const datasets = trend.series.map((s, i) => ({
    label: `${s.group} (${count(s.attempts)})`,
    data: s.points.map((p) => ({ x: p[0], y: 100 * p[1] })),
    borderColor: COLORS[i % COLORS.length],
    backgroundColor: COLORS[i % COLORS.length],
    tension: 0.2,
    pointRadius: 2,
  }));
  chart("trend-chart", {
    type: "line",
    data: { datasets },
    options: {
      animation: false,
      parsing: false,
      scales: { x: timeAxis(), y: { min: 0, max: 100, title: { display: true, text: "% delivered" } } },
    },
  });
}

function drawVolume(volume) {
  const x = (p) => p.t;
  chart("volume-chart", {
    type: "bar",
    data: {
      datasets: [
        { label: "attempts (sent)", data: volume.points.map((p) => ({ x: x(p), y: p.attempts })), backgroundColor: "#93c5fd" },
        { label: "delivered", data: volume.points.map((p) => ({ x: x(p), y: p.delivered })), backgroundColor: "#16a34a" },
        { label: "failed", data: volume.points.map((p) => ({ x: x(p), y: p.failed })), backgroundColor: "#dc2626" },
      ],
    },
    options: { animation: false, parsing: false, scales: { x: timeAxis(), y: { beginAtZero: true } } },
  });
  chart("ttd-chart", {
    type: "line",
    data: {
      datasets: [
        { label: "p50", data: volume.points.filter((p) => p.ttd_p50_s !== null).map((p) => ({ x: x(p), y: p.ttd_p50_s })), borderColor: "#2563eb" },
        { label: "p95", data: volume.points.filter((p) => p.ttd_p95_s !== null).map((p) => ({ x: x(p), y: p.ttd_p95_s })), borderColor: "#d97706" },
      ],
    },
    options: { animation: false, parsing: false, scales: { x: timeAxis(), y: { beginAtZero: true, title: { display: true, text: "seconds" } } } },
  });
}

function drawReasons(reasons) {
  chart("reasons-chart", {
    type: "doughnut",
    data: {
      labels: reasons.reasons.map((r) => `${r.reason} (${count(r.messages)})`),
      datasets: [{ data: reasons.reasons.map((r) => r.messages), backgroundColor: COLORS }],
    },
    options: { animation: false, plugins: { legend: { position: "right" } } },
  });
}

function fillTable(id, rows) {
  const body = $(id).querySelector("tbody");
  body.replaceChildren();
  for (const cells of rows) {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      const [text, cls] = Array.isArray(cell) ? cell : [cell, ""];
      td.textContent = text;
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

const labelText = (labels) => Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(" ");

function drawTables(worst, alerts, health) {
  fillTable("worst", worst.groups.map((g) => [
    g.group,
    [count(g.attempts), "num"],
    [pct(g.delivery_rate), "num"],
    [pct(g.previous_delivery_rate), "num"],
    [g.change === null ? "–" : (100 * g.change).toFixed(1) + " %", g.change !== null && g.change < -0.1 ? "num bad" : "num"],
  ]));
  fillTable("alerts", alerts.active.map((a) => [
    [a.severity, a.severity === "page" ? "page" : ""],
    a.rule,
    labelText(a.labels),
    a.summary,
    a.starts_at ? a.starts_at.slice(0, 19).replace("T", " ") : "",
  ]));
  $("no-alerts").hidden = alerts.active.length > 0;
  fillTable("recent", alerts.recent.map((a) => [
    a.at.slice(11, 19),
    [a.status, a.status === "firing" ? "bad" : "good"],
    a.rule,
    labelText(a.labels),
  ]));
  fillTable("health", health.services.map((s) => [
    s.job,
    [s.up ? "up" : `down (${s.error})`, s.up ? "good" : "bad"],
    [s.lag === undefined ? "" : count(s.lag), "num"],
    [s.requests === undefined ? "" : count(s.requests), "num"],
    [s.errors_5xx === undefined ? "" : count(s.errors_5xx), "num"],
    [s.dead_letters === undefined ? "" : count(s.dead_letters), "num"],
  ]));
  setValue("alert-count", String(alerts.active.length), alerts.active.length);
}

const money = (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(4));
const perCurrency = (m) => Object.entries(m).map(([c, v]) => `${money(v)} ${c}`).join(", ") || "–";

function drawInsights(compare, cost) {
  fillTable("compare", compare.rows.map((r) => [
    compare.by.map((g) => r[g] ?? "–").join(" / "),
    r.provider,
    [count(r.attempts), "num"],
    [pct(r.delivery_rate), "num"],
    [r.rate_low === null ? "–" : `${pct(r.rate_low)} – ${pct(r.rate_high)}`, "num"],
    [secs(r.ttd_p50_s), "num"],
    [secs(r.ttd_p95_s), "num"],
    [perCurrency(r.cost_per_delivered), "num"],
    [pct(r.price_share), "num"],
    [r.best ? "best" : "", r.best ? "good" : ""],
  ]));
  $("no-compare").hidden = compare.rows.length > 0;
  fillTable("cost", cost.rows.map((r) => [
    r.provider ?? "–",
    r.currency === null ? ["no price", "muted"] : r.currency,
    [count(r.messages), "num"],
    [count(r.delivered), "num"],
    [money(r.spend), "num"],
    [money(r.spend_not_delivered), "num"],
    [money(r.cost_per_delivered), "num"],
    [pct(r.price_share), "num"],
  ]));
}

function drawSummary(summary) {
  setValue("messages", count(summary.messages), summary.messages);
  setValue("attempts", count(summary.attempts), summary.attempts);
  setValue("delivered", count(summary.delivered), summary.delivered);
  setValue("rate", pct(summary.delivery_rate), summary.delivery_rate);
  setValue("ttd-p50", secs(summary.ttd_p50_s), summary.ttd_p50_s);
  setValue("ttd-p95", secs(summary.ttd_p95_s), summary.ttd_p95_s);
  const before = summary.previous_delivery_rate;
  $("rate-change").textContent = before === null ? "no previous window" : `previous window ${pct(before)}`;
  $("as-of").textContent = summary.as_of ? `refreshed ${summary.as_of}` : "refresh time unknown";
}

async function refresh() {
  const windowS = $("window").value;
  const by = $("by").value;
  for (const el of document.querySelectorAll(".by-name")) el.textContent = by;
  const q = `window=${windowS}`;
  $("status").textContent = "loading …";
  try {
    const compareBy = $("compare-by").value;
    const [summary, trend, volume, reasons, worst, alerts, health, compare, cost] = await Promise.all([
      getJson(`/api/v1/summary?${q}`),
      getJson(`/api/v1/trend?${q}&by=${by}`),
      getJson(`/api/v1/volume?${q}`),
      getJson(`/api/v1/reasons?${q}`),
      getJson(`/api/v1/worst?${q}&by=${by}`),
      getJson(`/api/v1/alerts?${q}`),
      getJson("/api/v1/health"),
      getJson(`/api/v1/compare?${q}&by=${encodeURIComponent(compareBy)}`),
      getJson(`/api/v1/cost?${q}&by=provider`),
    ]);
    drawSummary(summary);
    drawTrend(trend);
    drawVolume(volume);
    drawReasons(reasons);
    drawTables(worst, alerts, health);
    drawInsights(compare, cost);
    $("error").hidden = true;
    $("status").textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  } catch (err) {
    $("error").textContent = String(err.message || err);
    $("error").hidden = false;
    $("status").textContent = "";
  }
}

let timer = null;
function schedule() {
  if (timer) clearInterval(timer);
  timer = $("auto").checked ? setInterval(refresh, 30000) : null;
}

document.addEventListener("DOMContentLoaded", () => {
  $("refresh").addEventListener("click", refresh);
  $("window").addEventListener("change", refresh);
  $("by").addEventListener("change", refresh);
  $("compare-by").addEventListener("change", refresh);
  $("auto").addEventListener("change", schedule);
  schedule();
  refresh();
});
