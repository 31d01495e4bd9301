// Usage: published, delivered, rate-limited and fallbacks fired, and the most streams open
// at once, per hour (48 h) and per day (30 days) — for the tenant in view, or (the
// operator) for every tenant summed. Hours and days without figures count 0.
import { html } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";

import { get } from "../api.js";
import { Empty, Problem, useLoad } from "../ui.js";

const HOUR = 3600;
const DAY = 86400;
const SERIES = [
  ["published", "Published", "#0b57d0"],
  ["delivered", "Delivered", "#146c2e"],
  ["rate_limited", "Rate-limited", "#b3261e"],
  ["fallbacks_fired", "Fallbacks fired", "#7a4a00"],
];

/** `count` slots of `step` seconds ending with the one `now` is in, each with its figures. */
function slots(rows, key, step, count, now) {
  const last = Math.floor(now / step) * step;
  const byStart = new Map(rows.map((row) => [Math.floor(Date.parse(row[key]) / 1000), row]));
  const starts = Array.from({ length: count }, (_, i) => last - (count - 1 - i) * step);
  return { starts, rows: starts.map((start) => byStart.get(start) || {}) };
}

export function Usage({ tenant, operator }) {
  const [scope, setScope] = useState(operator ? "all" : "tenant");
  const usage = useLoad(() => {
    if (scope === "all") return get("/admin/usage");
    if (operator) return get(`/admin/tenants/${encodeURIComponent(tenant)}/usage`);
    return get("/v1/usage");
  }, [scope, tenant]);
  const now = Date.now() / 1000;
  const data = usage.data;
  const hours = data && slots(data.hours, "hour", HOUR, 48, now);
  const days = data && slots(data.days, "day", DAY, 30, now);
  const empty = data && data.hours.length === 0 && data.days.length === 0;
  return html`
    <h1 tabindex="-1">Usage</h1>
    ${operator && html`<form class="inline" onSubmit=${(e) => e.preventDefault()}>
      <label>Of<select value=${scope} onChange=${(e) => setScope(e.currentTarget.value)}>
        <option value="all">All tenants</option>
        ${tenant && html`<option value="tenant">Tenant ${tenant}</option>`}
      </select></label></form>`}
    <${Problem} error=${usage.error} />
    ${empty && html`<${Empty}>No figures yet — they appear within a second of the first publish.</${Empty}>`}
    ${data && html`
      <${Chart} title="Events per hour, last 48 hours" starts=${hours.starts} rows=${hours.rows} series=${SERIES} step=${HOUR} />
      <${Chart} title="Streams open per hour (most at once)" starts=${hours.starts} rows=${hours.rows}
        series=${[["streams_open", "Streams open", "#6750a4"]]} step=${HOUR} />
      <${Chart} title="Events per day, last 30 days" starts=${days.starts} rows=${days.rows} series=${SERIES} step=${DAY} />
      <${Chart} title="Streams open per day (most at once)" starts=${days.starts} rows=${days.rows}
        series=${[["streams_open", "Streams open", "#6750a4"]]} step=${DAY} />`}
    <button type="button" onClick=${usage.reload}>Refresh<span class="sr"> usage</span></button>`;
}

/** A time-series chart with a summary a screen reader can read. */
function Chart({ title, starts, rows, series, step }) {
  const box = useRef();
  useEffect(() => {
    const width = Math.max(280, Math.min(960, box.current.clientWidth || 600));
    const plot = new uPlot(
      {
        width,
        height: 220,
        series: [{}, ...series.map(([, label, stroke]) => ({ label, stroke, width: 2, points: { show: false } }))],
        // Counts are whole: no tick between 0 and 1.
        axes: [{ values: step === DAY ? "{M}/{D}" : "{HH}:{mm}" }, { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 1e6, 1e7] }],
        scales: { y: { range: (_, min, max) => [0, Math.max(1, max)] } },
        legend: { live: false },
      },
      [starts, ...series.map(([key]) => rows.map((row) => row[key] || 0))],
      box.current,
    );
    const resized = () => plot.setSize({ width: Math.max(280, Math.min(960, box.current.clientWidth)), height: 220 });
    addEventListener("resize", resized);
    return () => {
      removeEventListener("resize", resized);
      plot.destroy();
    };
  }, [starts.join(), JSON.stringify(rows)]);
  const totals = series.map(([key, label]) => `${label} ${rows.reduce((sum, row) => sum + (row[key] || 0), 0)}`);
  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    <div ref=${box} role="img" aria-label=${`${title}: ${totals.join(", ")}`}></div>
  </figure>`;
}
