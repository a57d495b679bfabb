// quotaflow operator dashboard. The tenant's secret key lives in one variable of this closure: never in storage,
// cookies or URLs. Every string from the API is written with textContent; the chart is SVG built node by node.
(function () {
  "use strict";

  var USERS_LISTED = 100;
  var ANALYTICS_ROWS = 10000;  // the API's maximum
  var ANALYTICS_POLLS_MAX = 30;  // an Athena query still running: polled once a second for half a minute
  var TOP_USERS = 20;
  var MODEL_SERIES_MAX = 6;  // the top five models by use, and the rest together
  var LEDGER_PAGE = 200;  // the API's page maximum
  var HOLDS_LOOKED_UP_MAX = 10;  // reservations read one by one for their expiry
  var SVG_NS = "http://www.w3.org/2000/svg";
  var END_KINDS = {commit: true, release: true, expire: true};

  var secretKey = null;
  var state = {user: null, usage: null, entries: [], nextCursor: null, chartMeter: null, generation: 0};
  var numbers = new Intl.NumberFormat();
  var times = new Intl.DateTimeFormat(undefined, {dateStyle: "medium", timeStyle: "medium"});
  var shortTimes = new Intl.DateTimeFormat(undefined, {month: "short", day: "numeric", hour: "2-digit",
    minute: "2-digit"});
  var clockTimes = new Intl.DateTimeFormat(undefined, {hour: "2-digit", minute: "2-digit", second: "2-digit"});

  function $(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attributes, text) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attributes || {}).forEach(function (name) { node.setAttribute(name, String(attributes[name])); });
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function cell(text, className) { return el("td", className, text); }
  function num(value) { return numbers.format(value); }
  function signed(value) { return value === 0 ? "" : (value > 0 ? "+" : "−") + num(Math.abs(value)); }
  function when(iso) { return iso ? times.format(new Date(iso)) : ""; }

  function emptyRow(tbody, columns, text) {
    var td = cell(text, "empty");
    td.colSpan = columns;
    var tr = el("tr");
    tr.appendChild(td);
    tbody.replaceChildren(tr);
  }

  // --- the API, with the key from memory --------------------------------------------------------------------

  function api(path, query, body) {
    if (!secretKey) return Promise.reject({status: 0, code: "not_connected", message: "not connected"});
    var url = new URL(path, document.baseURI);
    Object.keys(query || {}).forEach(function (name) {
      if (query[name] !== null && query[name] !== undefined && query[name] !== "") {
        url.searchParams.set(name, query[name]);
      }
    });
    var headers = {"Authorization": "Bearer " + secretKey};
    var init = {headers: headers, cache: "no-store", credentials: "omit"};
    if (body !== undefined) {
      init.method = "POST";
      init.body = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
    return fetch(url, init)
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          if (response.ok) return body;
          var error = (body && body.error) || {};
          throw {status: response.status, code: error.code || "http_" + response.status, message: error.message || ""};
        });
      }, function (network) {
        throw {status: 0, code: "network", message: String(network && network.message || network)};
      });
  }

  function userPath(userId, tail) { return "users/" + encodeURIComponent(userId) + "/" + tail; }

  function failed(error) {
    if (error.status === 401 || error.status === 403) {
      forget();
      $("connect-error").textContent = "The key was refused (" + error.status + " " + error.code + "): " +
        "use a tenant secret key (qf_sk_…).";
      return;
    }
    $("connect-error").textContent = "Request failed: " + (error.code || "error") +
      (error.message ? " — " + error.message : "");
  }

  // --- connect / forget ---------------------------------------------------------------------------------------

  function connect(event) {
    event.preventDefault();
    var input = $("secret-key");
    var key = input.value.trim();
    input.value = "";  // from here on only the variable holds it
    if (!key) return;
    secretKey = key;
    $("connect-error").textContent = "";
    $("connection").textContent = "Connecting…";
    loadUsers().then(function (loaded) {
      if (!loaded) {
        if (secretKey) forget();  // not refused, but not reachable either: start over
        return;
      }
      $("connection").textContent = "Connected with key …" + key.slice(-4);
      $("forget").hidden = false;
      $("users").hidden = false;
      $("analytics").hidden = false;
      $("export").hidden = false;
      loadAnalytics();
    });
  }

  function forget() {
    secretKey = null;
    state = {user: null, usage: null, entries: [], nextCursor: null, chartMeter: null, generation: state.generation + 1};
    ["users", "analytics", "user", "export", "forget"].forEach(function (id) { $(id).hidden = true; });
    ["users-table", "counters-table", "holds-table", "ledger-table", "top-users-table", "daily-table"].forEach(
      function (id) { $(id).tBodies[0].replaceChildren(); });
    $("chart").replaceChildren();
    $("model-chart").replaceChildren();
    $("connection").textContent = "Not connected";
  }

  // --- users by consumption ---------------------------------------------------------------------------------

  function loadUsers() {
    var select = $("users-meter");
    return api("dashboard/users", {meter: select.value, limit: USERS_LISTED}).then(function (listing) {
      var chosen = select.value;
      while (select.options.length > 1) select.remove(1);
      listing.meters.forEach(function (meter) { select.add(new Option(meter, meter, false, meter === chosen)); });
      var analyticsMeter = $("analytics-meter");
      var charted = analyticsMeter.value;
      analyticsMeter.replaceChildren();
      listing.meters.forEach(function (meter) {
        analyticsMeter.add(new Option(meter, meter, false, meter === charted));
      });
      renderUsers(listing);
      $("connect-error").textContent = "";
      return true;
    }, function (error) {
      failed(error);
      return false;
    });
  }

  function shareCell(counter) {
    var allowance = counter.quota + counter.credits;
    var percent = allowance > 0 ? Math.floor((counter.used * 100) / allowance) : (counter.used > 0 ? 100 : 0);
    var wrap = el("div", "share" + (percent >= 100 ? " full" : percent >= 80 ? " warn" : ""));
    var bar = el("div", "bar");
    var fill = el("div", "fill");
    fill.style.width = Math.min(100, percent) + "%";
    bar.appendChild(fill);
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    bar.setAttribute("aria-valuenow", String(Math.min(100, percent)));
    bar.setAttribute("aria-label", counter.meter + " share used");
    wrap.append(bar, el("span", null, percent + "%"));
    var td = el("td");
    td.appendChild(wrap);
    return td;
  }

  function renderUsers(listing) {
    var tbody = $("users-table").tBodies[0];
    if (!listing.users.length) {
      emptyRow(tbody, 9, listing.scanned ? "No user has this meter." : "No users yet.");
    } else {
      tbody.replaceChildren();
      listing.users.forEach(function (row, index) {
        var counter = row.counters.filter(function (c) { return c.meter === row.ranked_by; })[0];
        var tr = el("tr");
        tr.setAttribute("data-user", row.user_id);
        if (row.user_id === state.user) tr.className = "selected";
        var open = el("button", "link", row.user_id);
        open.type = "button";
        open.addEventListener("click", function () {
          state.chartMeter = row.ranked_by;  // chart the meter the user was ranked by
          selectUser(row.user_id);
        });
        var userCell = el("td");
        userCell.appendChild(open);
        tr.append(cell(index + 1, "num"), userCell, cell(row.plan_id), cell(counter.label || counter.meter),
          cell(num(counter.used), "num"), cell(num(counter.reserved), "num"),
          cell(num(counter.quota + counter.credits), "num"), cell(num(counter.remaining), "num"), shareCell(counter));
        tbody.appendChild(tr);
      });
    }
    var note = listing.scanned + " user" + (listing.scanned === 1 ? "" : "s") + " read at " + when(listing.as_of) +
      (listing.users.length < listing.scanned ? "; showing " + listing.users.length : "") + ".";
    if (listing.truncated) note += " The tenant has more users than one listing reads; only the first are ranked.";
    $("users-note").textContent = note;
  }

  // --- one user: counters, chart, holds, ledger ---------------------------------------------------------------

  function selectUser(userId) {
    var generation = ++state.generation;
    state.user = userId;
    state.entries = [];
    state.nextCursor = null;
    Array.prototype.forEach.call($("users-table").tBodies[0].rows, function (tr) {
      tr.classList.toggle("selected", tr.getAttribute("data-user") === userId);
    });
    return Promise.all([
      api(userPath(userId, "usage")),
      api(userPath(userId, "ledger"), {limit: LEDGER_PAGE})
    ]).then(function (results) {
      if (generation !== state.generation) return;
      state.usage = results[0];
      state.entries = results[1].entries;
      state.nextCursor = results[1].next_cursor;
      var meters = state.usage.counters.map(function (c) { return c.meter; });
      if (meters.indexOf(state.chartMeter) < 0) state.chartMeter = meters[0] || null;
      $("user-title").textContent = "User " + userId + " · plan " + state.usage.plan_id;
      $("user").hidden = false;
      renderUser();
    }, failed);
  }

  function loadOlder() {
    if (!state.user || !state.nextCursor) return;
    var generation = state.generation;
    api(userPath(state.user, "ledger"), {limit: LEDGER_PAGE, cursor: state.nextCursor}).then(function (page) {
      if (generation !== state.generation) return;
      state.entries = state.entries.concat(page.entries);
      state.nextCursor = page.next_cursor;
      renderUser();
    }, failed);
  }

  function renderUser() {
    renderCounters();
    var select = $("chart-meter");
    select.replaceChildren();
    state.usage.counters.forEach(function (c) {
      select.add(new Option(c.label || c.meter, c.meter, false, c.meter === state.chartMeter));
    });
    renderChart();
    renderHolds();
    renderLedger();
  }

  function renderCounters() {
    var tbody = $("counters-table").tBodies[0];
    tbody.replaceChildren();
    state.usage.counters.forEach(function (c) {
      var period = c.period === "none" ? "none" : c.period + " to " + when(c.period_end);
      var tr = el("tr");
      tr.append(cell(c.label || c.meter), cell(period), cell(num(c.used), "num"), cell(num(c.reserved), "num"),
        cell(num(c.quota), "num"), cell(num(c.credits), "num"), cell(num(c.remaining), "num"));
      tbody.appendChild(tr);
    });
    if (!state.usage.counters.length) emptyRow(tbody, 7, "No meters on this plan.");
  }

  function renderLedger() {
    var tbody = $("ledger-table").tBodies[0];
    tbody.replaceChildren();
    state.entries.forEach(function (e) {
      var tr = el("tr");
      tr.append(cell(when(e.at)), cell(e.kind), cell(e.meter), cell(signed(e.delta_used), "num"),
        cell(signed(e.delta_reserved), "num"), cell(signed(e.delta_credits), "num"),
        cell(signed(e.delta_quota), "num"), cell(e.ref || "", "ref"));
      tbody.appendChild(tr);
    });
    if (!state.entries.length) emptyRow(tbody, 8, "No ledger entries.");
    $("ledger-more").hidden = !state.nextCursor;
  }

  // Open holds from the loaded ledger: the ledger is read newest first, so any end of a loaded reserve entry
  // (commit, release, expire) is newer than it and loaded too. A reserve entry without one is still held.
  function openHolds() {
    var ended = {};
    state.entries.forEach(function (e) { if (END_KINDS[e.kind] && e.ref) ended[e.ref] = true; });
    return state.entries.filter(function (e) { return e.kind === "reserve" && e.ref && !ended[e.ref]; });
  }

  function renderHolds() {
    var tbody = $("holds-table").tBodies[0];
    var holds = openHolds();
    tbody.replaceChildren();
    var lookups = {};
    holds.forEach(function (e) {
      var expires = cell("");
      var tr = el("tr");
      tr.append(cell(e.ref, "ref"), cell(e.meter), cell(num(e.delta_reserved), "num"), cell(when(e.at)), expires);
      tbody.appendChild(tr);
      (lookups[e.ref] = lookups[e.ref] || []).push(expires);
    });
    if (!holds.length) emptyRow(tbody, 5, "No open reservations in the loaded entries.");
    var generation = state.generation;
    Object.keys(lookups).slice(0, HOLDS_LOOKED_UP_MAX).forEach(function (ref) {
      api("reservations/" + encodeURIComponent(ref)).then(function (reservation) {
        if (generation !== state.generation) return;
        var text = when(reservation.expires_at) + (reservation.status === "pending" ? "" : " (" + reservation.status + ")");
        lookups[ref].forEach(function (td) { td.textContent = text; });
      }, function () { /* the expiry column stays empty; the hold itself is shown */ });
    });
    var heldLoaded = {};
    holds.forEach(function (e) { heldLoaded[e.meter] = (heldLoaded[e.meter] || 0) + e.delta_reserved; });
    var older = state.usage.counters.filter(function (c) { return c.reserved > (heldLoaded[c.meter] || 0); });
    $("holds-note").textContent = older.length
      ? "More is held than the loaded entries show (" + older.map(function (c) {
        return c.meter + ": " + num(c.reserved) + " held";
      }).join(", ") + "): load older ledger entries to see those reservations."
      : "";
  }

  // --- the chart: used and allowance (quota + credits) over this period, stepped, from the ledger -------------

  // Walk the loaded entries of the counter's period from newest to oldest, starting at the counter's current
  // values: the level before an entry is the level after it minus its delta. Exact however many pages are loaded;
  // once the whole ledger is loaded, the first level reaches back to the period's start.
  function series(counter, entries, complete) {
    var mine = entries.filter(function (e) {
      return e.meter === counter.meter && e.period_start === counter.period_start;
    });
    var used = counter.used;
    var allowance = counter.quota + counter.credits;
    var newest = mine.length ? Date.parse(mine[0].at) : 0;
    var points = [{t: Math.max(Date.now(), newest), used: used, allowance: allowance, entry: null}];
    mine.forEach(function (e) {  // newest first
      points.push({t: Date.parse(e.at), used: used, allowance: allowance, entry: e});
      used -= e.delta_used;
      allowance -= e.delta_quota + e.delta_credits;
    });
    if (mine.length) {
      var oldest = Date.parse(mine[mine.length - 1].at);
      var start = complete && counter.period_start ? Math.min(oldest, Date.parse(counter.period_start)) : oldest;
      points.push({t: start, used: used, allowance: allowance, entry: null});
    }
    return points.reverse();  // oldest first; each point holds the levels from its time on
  }

  function renderChart() {
    var figure = $("chart");
    figure.replaceChildren();
    var counter = state.usage.counters.filter(function (c) { return c.meter === state.chartMeter; })[0];
    if (!counter) return;
    var points = series(counter, state.entries, !state.nextCursor);
    var label = counter.label || counter.meter;
    if (points.length < 2) {
      figure.appendChild(el("figcaption", null, "No " + label.toLowerCase() + " recorded in this period yet."));
      return;
    }
    var W = 900, H = 260, left = 64, right = 16, top = 12, bottom = 30;
    var t0 = points[0].t, t1 = Math.max(points[points.length - 1].t, t0 + 1000);
    var axisTimes = t1 - t0 < 86400000 ? clockTimes : shortTimes;
    var peak = 1;
    points.forEach(function (p) { peak = Math.max(peak, p.used, p.allowance); });
    peak = Math.ceil(peak * 1.05);
    function x(t) { return left + ((t - t0) / (t1 - t0)) * (W - left - right); }
    function y(v) { return top + (1 - v / peak) * (H - top - bottom); }
    function step(key) {
      var d = "M" + x(points[0].t).toFixed(1) + "," + y(points[0][key]).toFixed(1);
      for (var i = 1; i < points.length; i++) {
        d += "H" + x(points[i].t).toFixed(1) + "V" + y(points[i][key]).toFixed(1);
      }
      return d;
    }

    var chart = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img", "aria-labelledby": "chart-title"});
    chart.appendChild(svg("title", {id: "chart-title"}, label + " used over this period: " + num(counter.used) +
      " of " + num(counter.quota + counter.credits) + " now"));
    [0, 0.5, 1].forEach(function (share) {
      var value = Math.round(peak * share);
      chart.appendChild(svg("line", {"class": "axis", x1: left, x2: W - right, y1: y(value), y2: y(value)}));
      chart.appendChild(svg("text", {"class": "tick", x: left - 6, y: y(value) + 4, "text-anchor": "end"}, num(value)));
    });
    [t0, (t0 + t1) / 2, t1].forEach(function (t, index) {
      var anchor = ["start", "middle", "end"][index];
      chart.appendChild(svg("text", {"class": "tick", x: x(t), y: H - 10, "text-anchor": anchor},
        axisTimes.format(new Date(t))));
    });
    var usedPath = step("used");
    var baseline = y(0).toFixed(1);
    chart.appendChild(svg("path", {"class": "used-area", d: usedPath + "V" + baseline + "H" + x(t0).toFixed(1) + "Z"}));
    chart.appendChild(svg("path", {"class": "allowance", d: step("allowance")}));
    chart.appendChild(svg("path", {"class": "used", d: usedPath}));
    points.forEach(function (p) {
      if (!p.entry || p.entry.delta_used === 0) return;
      var dot = svg("circle", {"class": "dot", cx: x(p.t), cy: y(p.used), r: 3});
      dot.appendChild(svg("title", {}, when(p.entry.at) + " · " + p.entry.kind + " " + signed(p.entry.delta_used) +
        " → " + num(p.used)));
      chart.appendChild(dot);
    });
    figure.appendChild(chart);
    var caption = el("figcaption");
    caption.append(el("span", "legend-used", "— used"), document.createTextNode("  "),
      el("span", "legend-allowance", "- - allowance (quota + credits)"),
      document.createTextNode("  · from " + (points.length - 2) + " loaded ledger entries of this period"));
    figure.appendChild(caption);
  }

  // --- usage analytics: the tenant's usage from the lake (POST /v1/analytics/usage) -----------------------------

  function usageQuery(body) {
    function settle(answer, polls) {
      if (answer.status !== "running" || polls >= ANALYTICS_POLLS_MAX) return answer;
      return new Promise(function (resolve) { setTimeout(resolve, 1000); }).then(function () {
        return api("analytics/queries/" + encodeURIComponent(answer.query_id));
      }).then(function (next) { return settle(next, polls + 1); });
    }
    return api("analytics/usage", null, body).then(function (answer) { return settle(answer, 0); });
  }

  function loadAnalytics() {
    var meter = $("analytics-meter").value;
    if (!meter) {
      $("analytics-note").textContent = "No meters yet.";
      return Promise.resolve();
    }
    var to = new Date();
    var from = new Date(to.getTime() - Number($("analytics-days").value) * 86400000);
    var range = {meter: meter, from: from.toISOString(), to: to.toISOString(), limit: ANALYTICS_ROWS};
    var generation = state.generation;
    $("analytics-note").textContent = "Querying…";
    return Promise.all([
      usageQuery(Object.assign({window: "day", group_by: ["model"]}, range)),
      usageQuery(Object.assign({window: "month", group_by: ["user"]}, range)),
      usageQuery(Object.assign({window: "day"}, range))
    ]).then(function (answers) {
      if (generation !== state.generation) return;
      if (answers.some(function (a) { return a.status === "running"; })) {
        $("analytics-note").textContent = "The lake is still answering; refresh in a moment.";
        return;
      }
      renderModelChart(answers[0].rows);
      renderTopUsers(answers[1].rows);
      renderDaily(answers[2].rows);
      $("analytics-note").textContent = "From the usage lake, " + when(range.from) + " to " + when(range.to) +
        ". Entries reach the lake within seconds under quotaflow serve, within minutes in AWS.";
    }, failed);
  }

  function totals(rows, key) {
    var found = {};
    rows.forEach(function (row) {
      var name = row[key] === null ? "(none)" : row[key];
      var total = found[name] = found[name] || {name: name, used: 0, events: 0};
      total.used += row.used;
      total.events += row.events;
    });
    return Object.keys(found).map(function (name) { return found[name]; })
      .sort(function (a, b) { return b.used - a.used || (a.name < b.name ? -1 : 1); });
  }

  function renderTopUsers(rows) {
    var tbody = $("top-users-table").tBodies[0];
    tbody.replaceChildren();
    totals(rows, "user").slice(0, TOP_USERS).forEach(function (user, index) {
      var tr = el("tr");
      tr.setAttribute("data-user", user.name);
      tr.append(cell(index + 1, "num"), cell(user.name), cell(num(user.used), "num"), cell(num(user.events), "num"));
      tbody.appendChild(tr);
    });
    if (!rows.length) emptyRow(tbody, 4, "No usage in this range.");
  }

  function renderDaily(rows) {
    var tbody = $("daily-table").tBodies[0];
    tbody.replaceChildren();
    rows.forEach(function (row) {
      var tr = el("tr");
      tr.append(cell(row.window_start.slice(0, 10)), cell(num(row.used), "num"), cell(num(row.events), "num"));
      tbody.appendChild(tr);
    });
    if (!rows.length) emptyRow(tbody, 3, "No usage in this range.");
  }

  // Stacked bars, one per day: the top models by use each get a colour, the rest share the last.
  function renderModelChart(rows) {
    var figure = $("model-chart");
    figure.replaceChildren();
    if (!rows.length) {
      figure.appendChild(el("figcaption", null, "No usage in this range."));
      return;
    }
    var ranked = totals(rows, "model");
    var series = {};
    ranked.forEach(function (model, index) { series[model.name] = Math.min(index, MODEL_SERIES_MAX - 1); });
    var days = [];
    var stacks = {};
    rows.forEach(function (row) {
      var day = row.window_start.slice(0, 10);
      if (!stacks[day]) { stacks[day] = []; days.push(day); }
      stacks[day].push(row);
    });
    days.sort();
    var peak = 1;
    days.forEach(function (day) {
      var height = 0;
      stacks[day].forEach(function (row) { height += Math.max(0, row.used); });
      peak = Math.max(peak, height);
    });
    var W = 900, H = 240, left = 64, right = 16, top = 12, bottom = 30;
    var slot = (W - left - right) / days.length;
    var width = Math.max(2, slot * 0.7);
    function y(v) { return top + (1 - v / peak) * (H - top - bottom); }
    var chart = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img", "aria-labelledby": "model-chart-title"});
    chart.appendChild(svg("title", {id: "model-chart-title"}, "Usage by model per day, " + days.length + " days, " +
      ranked.length + " models"));
    [0, 0.5, 1].forEach(function (share) {
      var value = Math.round(peak * share);
      chart.appendChild(svg("line", {"class": "axis", x1: left, x2: W - right, y1: y(value), y2: y(value)}));
      chart.appendChild(svg("text", {"class": "tick", x: left - 6, y: y(value) + 4, "text-anchor": "end"}, num(value)));
    });
    days.forEach(function (day, index) {
      var x = left + slot * index + (slot - width) / 2;
      var base = 0;
      stacks[day].sort(function (a, b) { return series[name(a)] - series[name(b)]; }).forEach(function (row) {
        if (row.used <= 0) return;  // refunds lower the day's total (in the table) but draw no bar
        var bar = svg("rect", {"class": "bar series-" + series[name(row)], x: x.toFixed(1),
          y: y(base + row.used).toFixed(1), width: width.toFixed(1), height: (y(base) - y(base + row.used)).toFixed(1)});
        bar.appendChild(svg("title", {}, day + " · " + name(row) + ": " + num(row.used) + " in " + num(row.events) +
          " entries"));
        chart.appendChild(bar);
        base += row.used;
      });
      if (index === 0 || index === days.length - 1 || index === Math.floor(days.length / 2)) {
        chart.appendChild(svg("text", {"class": "tick", x: x + width / 2, y: H - 10, "text-anchor": "middle"}, day));
      }
    });
    figure.appendChild(chart);
    var caption = el("figcaption");
    ranked.slice(0, MODEL_SERIES_MAX).forEach(function (model, index) {
      var label = index === MODEL_SERIES_MAX - 1 && ranked.length > MODEL_SERIES_MAX ? "other models" : model.name;
      caption.appendChild(el("span", "legend series-" + index, "■ " + label));
    });
    figure.appendChild(caption);
  }

  function name(row) { return row.model === null ? "(none)" : row.model; }

  document.addEventListener("DOMContentLoaded", function () {
    $("analytics-meter").addEventListener("change", loadAnalytics);
    $("analytics-days").addEventListener("change", loadAnalytics);
    $("analytics-refresh").addEventListener("click", loadAnalytics);
    $("key-form").addEventListener("submit", connect);
    $("forget").addEventListener("click", function () { forget(); $("secret-key").focus(); });
    $("users-meter").addEventListener("change", loadUsers);
    $("users-refresh").addEventListener("click", function () {
      loadUsers();
      if (state.user) selectUser(state.user);
    });
    $("chart-meter").addEventListener("change", function (event) {
      state.chartMeter = event.target.value;
      renderChart();
    });
    $("ledger-more").addEventListener("click", loadOlder);
  });
})();
