// evalstream view: the runs list, a run's progress as server-sent events, its estimates drawn
// with uPlot (shipped beside this file), and the sample browser. Every URL is relative: the app
// may be mounted under a prefix (the page's <base> names it).
"use strict";

const $ = (sel) => document.querySelector(sel);
const el = (tag, text, cls) => {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
};
const num = (x, digits = 3) => (typeof x === "number" && isFinite(x) ? x.toFixed(digits) : "–");

const view = {
  selected: null, // the run key shown
  source: null, // its EventSource
  charts: new Map(), // "task\u0000metric" -> {plot, data, latest}
  models: new Map(), // run key -> model name, from the listing
  browser: { page: 0, size: 20, more: false, run: null },
};

async function getJSON(url) {
  const answer = await fetch(url);
  const body = await answer.json();
  if (!answer.ok) throw new Error(body.error || answer.statusText);
  return body;
}

// -- the runs list -------------------------------------------------------------------------

async function loadRuns() {
  let listing;
  try {
    listing = await getJSON("api/runs");
    $("#runs-error").hidden = true;
  } catch (err) {
    $("#runs-error").textContent = err.message;
    $("#runs-error").hidden = false;
    return;
  }
  $("#folder").textContent = listing.output_dir || "";
  const body = $("#runs tbody");
  body.replaceChildren();
  for (const run of listing.runs.slice().reverse()) {
    const row = el("tr");
    row.dataset.key = run.key;
    if (run.model) view.models.set(run.key, run.model);
    if (run.key === view.selected) row.classList.add("selected");
    const status = el("td");
    status.append(el("span", run.live ? "live" : run.status, "badge " + run.status));
    const id = el("td", null, "id");
    id.append(el("div", run.model || "?"), el("div", run.run_id || run.date_id || run.key));
    row.append(status, id, el("td", run.samples ?? ""));
    row.addEventListener("click", () => select(run.key));
    body.append(row);
  }
  if (view.selected === null) {
    const wanted = new URLSearchParams(location.hash.slice(1)).get("run");
    const first = wanted || (listing.runs.find((r) => r.status === "running") || listing.runs.at(-1) || {}).key;
    if (first) select(first);
  }
}

// -- one run: progress events --------------------------------------------------------------

function select(key) {
  if (view.source) view.source.close();
  view.selected = key;
  history.replaceState(null, "", "#run=" + encodeURIComponent(key));
  for (const row of document.querySelectorAll("#runs tbody tr")) {
    row.classList.toggle("selected", row.dataset.key === key);
  }
  for (const chart of view.charts.values()) chart.plot.destroy();
  view.charts.clear();
  $("#estimates").replaceChildren();
  $("#tasks").replaceChildren();
  for (const part of ["#estimates-part", "#baseline-part", "#results-part", "#browser-part"]) {
    $(part).hidden = true;
  }
  $("#run").hidden = false;
  $("#run-title").textContent = key;
  listen(key, true);
}

// A live run that ends saved is asked for once more: its results and samples (the charts stay).
function listen(key, first) {
  let last = null;
  const source = (view.source = new EventSource("api/events?run=" + encodeURIComponent(key)));
  source.addEventListener("progress", (e) => update((last = JSON.parse(e.data))));
  source.addEventListener("end", () => {
    source.close();
    loadRuns();
    if (first && last && last.state === "saved" && last.source !== "saved" && view.selected === key) {
      listen(key, false);
    }
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) $("#note").textContent = "the view's server is gone";
  };
}

function update(p) {
  const model = p.model || view.models.get(view.selected);
  $("#run-title").textContent = (model ? model + " · " : "") + (p.run_id || view.selected);
  const listed = document.querySelector("#runs tbody tr.selected");
  if (listed) listed.cells[2].textContent = p.samples;
  $("#state").textContent = p.state;
  $("#samples").textContent = p.samples;
  $("#rate").textContent = num(p.rate, 1);
  $("#durable").textContent = p.durable;
  $("#elapsed").textContent = num(p.elapsed, 1) + " s";
  $("#source").textContent = p.source;
  $("#note").textContent = p.note || "";
  drawTasks(p.tasks || {}, p.expected || {});
  if (p.estimates) drawEstimates(p.estimates);
  if (p.baseline) drawBaseline(p.baseline);
  if (p.results) drawResults(p.results);
  if (p.source === "saved" && view.browser.run !== view.selected) openBrowser(Object.keys(p.tasks || p.results || {}), p.results || {});
}

function drawTasks(tasks, expected) {
  const box = $("#tasks");
  const most = Math.max(1, ...Object.values(tasks));
  for (const [task, count] of Object.entries(tasks)) {
    let line = box.querySelector(`.task[data-task="${CSS.escape(task)}"]`);
    if (!line) {
      line = el("div", null, "task");
      line.dataset.task = task;
      const bar = el("div", null, "bar");
      bar.append(el("span"));
      line.append(el("span", task, "name"), bar, el("span", "", "count"));
      box.append(line);
    }
    const whole = expected[task] || most;
    line.querySelector(".bar span").style.width = Math.min(100, (100 * count) / whole) + "%";
    line.querySelector(".count").textContent = expected[task] ? `${count} / ${expected[task]}` : String(count);
    line.dataset.count = count;
  }
}

// -- estimates: mean and its band over n, one uPlot chart per task and metric ----------------

function drawEstimates(estimates) {
  $("#estimates-part").hidden = false;
  for (const [task, metrics] of Object.entries(estimates)) {
    for (const [metric, e] of Object.entries(metrics)) {
      if (!e || typeof e.n !== "number") continue;
      const chart = view.charts.get(task + "\u0000" + metric) || newChart(task, metric);
      const [ns, means, lows, highs] = chart.data;
      if (ns.length && ns.at(-1) === e.n) {
        means[means.length - 1] = e.mean; lows[lows.length - 1] = e.low; highs[highs.length - 1] = e.high;
      } else if (!ns.length || e.n > ns.at(-1)) {
        ns.push(e.n); means.push(e.mean); lows.push(e.low); highs.push(e.high);
      }
      chart.plot.setData(chart.data);
      chart.box.dataset.n = e.n;
      chart.box.dataset.width = e.high - e.low;
      chart.latest.textContent = `n = ${e.n}: ${num(e.mean)} [${num(e.low)}, ${num(e.high)}]`;
    }
  }
}

function newChart(task, metric) {
  const box = el("div", null, "chart");
  box.dataset.task = task;
  box.dataset.metric = metric;
  const latest = el("div", "", "latest");
  box.append(el("h4", `${task} · ${metric}`), latest);
  $("#estimates").append(box);
  const data = [[], [], [], []];
  const width = Math.max(360, box.clientWidth || 420);
  const plot = new uPlot(
    {
      width,
      height: 200,
      scales: { x: { time: false } },
      legend: { show: false },
      axes: [{ label: "samples (n)" }, { label: metric }],
      series: [
        { label: "n" },
        { label: "mean", stroke: "#2563eb", width: 2 },
        { label: "low", stroke: "rgba(37,99,235,0.35)", width: 1 },
        { label: "high", stroke: "rgba(37,99,235,0.35)", width: 1 },
      ],
      bands: [{ series: [3, 2], fill: "rgba(37,99,235,0.15)" }],
    },
    data,
    box,
  );
  const chart = { plot, data, latest, box };
  view.charts.set(task + "\u0000" + metric, chart);
  return chart;
}

function drawBaseline(baseline) {
  const body = $("#baseline tbody");
  body.replaceChildren();
  for (const [task, metrics] of Object.entries(baseline)) {
    for (const [metric, v] of Object.entries(metrics)) {
      const row = el("tr");
      row.dataset.task = task;
      row.append(el("td", task), el("td", metric), el("td", num(v.diff)),
        el("td", `[${num(v.low)}, ${num(v.high)}]`), el("td", v.n), el("td", v.verdict, "verdict " + v.verdict));
      body.append(row);
    }
  }
  $("#baseline-part").hidden = body.children.length === 0;
}

function drawResults(results) {
  const body = $("#results tbody");
  body.replaceChildren();
  for (const [task, metrics] of Object.entries(results)) {
    for (const [metric, r] of Object.entries(metrics)) {
      const row = el("tr");
      row.append(el("td", task), el("td", metric), el("td", num(r.value)), el("td", num(r.stderr)),
        el("td", r.low === null ? "–" : `[${num(r.low)}, ${num(r.high)}]`));
      body.append(row);
    }
  }
  $("#results-part").hidden = body.children.length === 0;
}

// -- the sample browser (saved runs) -------------------------------------------------------

function openBrowser(tasks, results) {
  const names = tasks.filter((t) => t !== "all" && !t.includes(":_average|"));
  if (!names.length) return;
  view.browser = { page: 0, size: 20, more: false, run: view.selected };
  const select = $("#filters [name=task]");
  select.replaceChildren(...names.map((t) => el("option", t)));
  $("#browser-part").hidden = false;
  loadSamples();
}

function filters() {
  const form = new FormData($("#filters"));
  const query = new URLSearchParams({ run: view.browser.run, page: view.browser.page, size: view.browser.size });
  for (const name of ["task", "metric", "correct", "q"]) {
    const value = form.get(name);
    if (value) query.set(name, value);
  }
  return query;
}

async function loadSamples() {
  const status = $("#browser-status");
  let page;
  try {
    page = await getJSON("api/samples?" + filters());
  } catch (err) {
    status.textContent = err.message;
    status.className = "error";
    return;
  }
  status.className = "";
  const metric = $("#filters [name=metric]");
  const chosen = metric.value;
  metric.replaceChildren(el("option", ""), ...page.metrics.map((m) => el("option", m)));
  metric.value = page.metrics.includes(chosen) ? chosen : "";
  view.browser.more = page.more;
  const first = page.page * page.size;
  status.textContent = page.rows.length
    ? `rows ${first + 1}–${first + page.rows.length}` + (page.total !== null ? ` of ${page.total}` : "")
    : "no row matches";
  $("#page").textContent = "page " + (page.page + 1);
  $("#prev").disabled = page.page === 0;
  $("#next").disabled = !page.more;
  const body = $("#sample-rows tbody");
  body.replaceChildren();
  const show = (x) => (x === null || x === undefined ? "" : typeof x === "string" ? x : JSON.stringify(x));
  for (const row of page.rows) {
    const tr = el("tr");
    tr.dataset.row = row.row;
    tr.append(el("td", row.row), el("td", show(row.input)), el("td", show(row.output)),
      el("td", show(row.gold)), el("td", show(row.metrics)));
    body.append(tr);
  }
}

$("#filters").addEventListener("submit", (e) => {
  e.preventDefault();
  view.browser.page = 0;
  loadSamples();
});
$("#filters [name=task]").addEventListener("change", () => { view.browser.page = 0; loadSamples(); });
$("#prev").addEventListener("click", () => { view.browser.page = Math.max(0, view.browser.page - 1); loadSamples(); });
$("#next").addEventListener("click", () => { if (view.browser.more) { view.browser.page += 1; loadSamples(); } });

loadRuns();
setInterval(loadRuns, 3000);
