/*! quotaflow usage widget: a balance bar per meter. No dependencies.
 *
 *   <div id="quota"></div>
 *   <script src="https://API/v1/widget.js"></script>
 *   <script>Quotaflow.widget("#quota", {publishableKey: "qf_pk_…", userId: "u1", userToken: "…"});</script>
 *
 * or, instead of the init call, data attributes on the container:
 *   <div data-quotaflow-widget data-publishable-key="qf_pk_…" data-user-id="u1" data-user-token="…"></div>
 *
 * Options: apiBase (default: where this script came from), publishableKey, userId, userToken (a string, or a
 * function returning a string or a promise of one: called again when the token is refused), refreshSeconds
 * (default 30; paused while the tab is hidden), meters (only these meter keys), locale, warnPercent (default 80),
 * styles (false: bring your own CSS). Events on the container: "quotaflow:update" (detail: the usage body) and
 * "quotaflow:error" (detail: {status, code, message, fatal}). Theme with CSS variables: --qf-bar-color,
 * --qf-bar-bg, --qf-bar-warn-color, --qf-bar-full-color, --qf-bar-height, --qf-radius, --qf-text-color,
 * --qf-muted-color, --qf-error-color, --qf-font, --qf-gap.
 *
 * It calls one route only, GET /v1/users/{id}/usage, with the publishable key and the user token. Every string
 * from the API is written with textContent, never parsed as HTML.
 */
(function () {
  "use strict";
  if (window.Quotaflow && window.Quotaflow.widget) return;

  var REFRESH_DEFAULT_S = 30;
  var REFRESH_MIN_S = 1;
  var REQUEST_TIMEOUT_MS = 10000;
  var STYLE_ID = "qf-widget-style";
  var CSS = [
    ".qf-widget{font:var(--qf-font,inherit);color:var(--qf-text-color,inherit);display:grid;gap:var(--qf-gap,12px)}",
    ".qf-meters{list-style:none;margin:0;padding:0;display:grid;gap:var(--qf-gap,12px)}",
    ".qf-head{display:flex;justify-content:space-between;align-items:baseline;gap:8px}",
    ".qf-label{font-weight:600}",
    ".qf-remaining{font-variant-numeric:tabular-nums}",
    ".qf-bar{height:var(--qf-bar-height,8px);background:var(--qf-bar-bg,#e5e7eb);",
    "border-radius:var(--qf-radius,999px);overflow:hidden;margin:6px 0 4px}",
    ".qf-fill{height:100%;width:0;background:var(--qf-bar-color,#4f46e5);border-radius:inherit;",
    "transition:width .4s ease}",
    ".qf-meter--warn .qf-fill{background:var(--qf-bar-warn-color,#d97706)}",
    ".qf-meter--full .qf-fill{background:var(--qf-bar-full-color,#dc2626)}",
    ".qf-foot,.qf-period{display:flex;flex-wrap:wrap;justify-content:space-between;gap:2px 12px;font-size:.85em;",
    "color:var(--qf-muted-color,#6b7280);font-variant-numeric:tabular-nums}",
    ".qf-period{margin-top:2px}",
    ".qf-period:empty,.qf-meters:empty{display:none}",
    ".qf-status{margin:0;font-size:.9em;color:var(--qf-muted-color,#6b7280)}",
    ".qf-status:empty{display:none}",
    ".qf-widget--error .qf-status{color:var(--qf-error-color,#b91c1c)}",
    ".qf-widget--stale .qf-meters{opacity:.6}",
    "@media (prefers-reduced-motion:reduce){.qf-fill{transition:none}}"
  ].join("");

  var currentScript = document.currentScript;
  var scriptBase = currentScript && currentScript.src
    ? currentScript.src.replace(/\/v1\/widget\.js(?:[?#].*)?$/, "")
    : "";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function injectStyles() {
    if (document.getElementById(STYLE_ID)) return;
    var style = el("style");
    style.id = STYLE_ID;
    style.textContent = CSS;
    (document.head || document.documentElement).appendChild(style);
  }

  function readConfig(root, options) {
    var data = root.dataset || {};
    var meters = options.meters || (data.meters ? data.meters.split(",") : null);
    var refresh = Number(options.refreshSeconds !== undefined ? options.refreshSeconds : data.refreshSeconds);
    var config = {
      apiBase: String(options.apiBase || data.apiBase || scriptBase).replace(/\/+$/, ""),
      publishableKey: options.publishableKey || data.publishableKey || "",
      userId: options.userId || data.userId || "",
      userToken: options.userToken || data.userToken || "",
      refreshMs: Math.max(REFRESH_MIN_S, isFinite(refresh) && refresh > 0 ? refresh : REFRESH_DEFAULT_S) * 1000,
      meters: meters ? meters.map(function (m) { return String(m).trim(); }) : null,
      locale: options.locale || data.locale || undefined,
      warnPercent: Number(options.warnPercent || data.warnPercent || 80),
      styles: options.styles !== undefined ? options.styles !== false : data.styles !== "false"
    };
    ["apiBase", "publishableKey", "userId", "userToken"].forEach(function (name) {
      if (!config[name]) throw new Error("quotaflow widget: " + name + " is required");
    });
    return config;
  }

  // What share of the allowance is gone (used + held), as a whole percent; a zero allowance counts as all gone.
  function percentUsed(counter) {
    var allowance = counter.quota + counter.credits;
    var consumed = Math.max(0, allowance - counter.remaining);
    if (allowance <= 0) return 100;
    return Math.min(100, Math.floor((consumed * 100) / allowance));
  }

  function Widget(root, config) {
    this.root = root;
    this.config = config;
    this.numbers = new Intl.NumberFormat(config.locale);
    this.dates = new Intl.DateTimeFormat(config.locale, {dateStyle: "medium", timeStyle: "short"});
    this.rows = {};
    this.timer = null;
    this.inflight = null;
    this.lastFetchAt = 0;
    this.stopped = false;
    this.onVisibility = this.visibilityChanged.bind(this);

    root.classList.add("qf-widget");
    this.list = el("ul", "qf-meters");
    this.status = el("p", "qf-status");
    this.status.setAttribute("role", "status");
    root.replaceChildren(this.list, this.status);
    root.setAttribute("aria-busy", "true");
    this.status.textContent = "Loading your balance…";
    document.addEventListener("visibilitychange", this.onVisibility);
    this.refresh();
  }

  Widget.prototype.token = function (renew) {
    var source = this.config.userToken;
    if (typeof source === "function") return Promise.resolve(source({renew: renew}));
    return Promise.resolve(source);
  };

  Widget.prototype.refresh = function () {
    var self = this;
    if (self.stopped) return Promise.resolve();
    clearTimeout(self.timer);
    self.timer = null;
    if (self.inflight) self.inflight.abort();
    var controller = new AbortController();
    self.inflight = controller;
    var timeout = setTimeout(function () { controller.abort(); }, REQUEST_TIMEOUT_MS);
    self.lastFetchAt = Date.now();
    // A request superseded by a newer refresh, or cut by destroy(), is no longer `inflight`: its outcome is dropped.
    return self.fetchUsage(controller.signal, false)
      .then(function (usage) { if (self.inflight === controller) self.render(usage); })
      .catch(function (failure) { if (self.inflight === controller) self.fail(failure); })
      .then(function () {
        clearTimeout(timeout);
        if (self.inflight !== controller) return;
        self.inflight = null;
        self.root.removeAttribute("aria-busy");
        self.schedule();
      });
  };

  Widget.prototype.fetchUsage = function (signal, renew) {
    var self = this;
    var config = self.config;
    var url = config.apiBase + "/v1/users/" + encodeURIComponent(config.userId) + "/usage";
    return self.token(renew).then(function (token) {
      return fetch(url, {
        method: "GET",
        mode: "cors",
        credentials: "omit",
        cache: "no-store",
        signal: signal,
        headers: {"Authorization": "Bearer " + config.publishableKey, "X-Quotaflow-User-Token": token}
      });
    }).then(function (response) {
      if (response.ok) return response.json();
      if (response.status === 401 && !renew && typeof config.userToken === "function") {
        return self.fetchUsage(signal, true);  // the page's backend may mint a fresh token: ask once
      }
      return response.json().catch(function () { return {}; }).then(function (body) {
        var error = (body && body.error) || {};
        throw {status: response.status, code: error.code || "http_" + response.status, message: error.message || ""};
      });
    }, function (network) {
      if (signal.aborted) throw {status: 0, code: "timeout", message: "the request timed out"};
      throw {status: 0, code: "network", message: String(network && network.message || network)};
    });
  };

  Widget.prototype.render = function (usage) {
    var self = this;
    var wanted = self.config.meters;
    var counters = (usage.counters || []).filter(function (c) { return !wanted || wanted.indexOf(c.meter) >= 0; });
    var seen = {};
    counters.forEach(function (counter) {
      seen[counter.meter] = true;
      var row = self.rows[counter.meter] || self.addRow(counter.meter);
      self.fillRow(row, counter);
      self.list.appendChild(row.item);  // keeps the API's order
    });
    Object.keys(self.rows).forEach(function (meter) {
      if (!seen[meter]) {
        self.rows[meter].item.remove();
        delete self.rows[meter];
      }
    });
    self.root.classList.remove("qf-widget--error", "qf-widget--stale");
    self.status.textContent = counters.length ? "" : "No usage limits for this account.";
    self.emit("quotaflow:update", usage);
  };

  Widget.prototype.addRow = function (meter) {
    var row = {item: el("li", "qf-meter")};
    row.item.setAttribute("data-meter", meter);
    var head = el("div", "qf-head");
    row.label = el("span", "qf-label");
    row.remaining = el("span", "qf-remaining");
    head.append(row.label, row.remaining);
    row.bar = el("div", "qf-bar");
    row.bar.setAttribute("role", "progressbar");
    row.bar.setAttribute("aria-valuemin", "0");
    row.bar.setAttribute("aria-valuemax", "100");
    row.fill = el("div", "qf-fill");
    row.bar.appendChild(row.fill);
    var foot = el("div", "qf-foot");
    row.quota = el("span", "qf-quota");
    row.percent = el("span", "qf-percent");
    foot.append(row.quota, row.percent);
    row.period = el("div", "qf-period");
    row.item.append(head, row.bar, foot, row.period);
    this.rows[meter] = row;
    return row;
  };

  Widget.prototype.fillRow = function (row, counter) {
    var n = this.numbers;
    var label = counter.label || counter.meter;
    var left = n.format(counter.remaining) + " " + label.toLowerCase() + " left";
    var percent = percentUsed(counter);
    row.label.textContent = label;
    row.remaining.textContent = left;
    row.bar.setAttribute("aria-valuenow", String(percent));
    row.bar.setAttribute("aria-valuetext", left + " (" + percent + "% used)");
    row.bar.setAttribute("aria-label", label + " used");
    row.fill.style.width = percent + "%";
    var quota = "of " + n.format(counter.quota);
    if (counter.credits > 0) quota += " + " + n.format(counter.credits) + " credits";
    if (counter.reserved > 0) quota += " · " + n.format(counter.reserved) + " on hold";
    row.quota.textContent = quota;
    row.percent.textContent = percent + "% used";
    row.period.textContent = counter.period_end ? "Resets " + this.dates.format(new Date(counter.period_end)) : "";
    row.item.classList.toggle("qf-meter--full", percent >= 100);
    row.item.classList.toggle("qf-meter--warn", percent >= this.config.warnPercent && percent < 100);
  };

  Widget.prototype.fail = function (failure) {
    var status = failure.status || 0;
    var fatal = status === 401 || status === 403 || status === 404;
    var message;
    if (status === 401) message = "Your session has expired. Reload the page to see your balance.";
    else if (status === 403) message = "This balance is not available to this page.";
    else if (status === 404) message = "No usage plan is set up for this account yet.";
    else message = "Couldn't refresh your balance. Retrying…";
    this.root.classList.add(fatal ? "qf-widget--error" : "qf-widget--stale");
    if (fatal) {
      this.stop();
      this.list.replaceChildren();
      this.rows = {};
    }
    this.status.textContent = message;
    this.emit("quotaflow:error", {status: status, code: failure.code, message: failure.message, fatal: fatal});
  };

  Widget.prototype.schedule = function () {
    var self = this;
    clearTimeout(self.timer);
    self.timer = null;
    if (self.stopped || document.visibilityState === "hidden") return;
    var wait = Math.max(0, self.lastFetchAt + self.config.refreshMs - Date.now());
    self.timer = setTimeout(function () { self.refresh(); }, wait);
  };

  Widget.prototype.visibilityChanged = function () {
    if (document.visibilityState === "hidden") {
      clearTimeout(this.timer);
      this.timer = null;
    } else if (!this.inflight) {
      this.schedule();  // at once if the last refresh is older than the interval
    }
  };

  Widget.prototype.emit = function (name, detail) {
    this.root.dispatchEvent(new CustomEvent(name, {detail: detail, bubbles: true}));
  };

  Widget.prototype.stop = function () {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    document.removeEventListener("visibilitychange", this.onVisibility);
  };

  function widget(target, options) {
    var root = typeof target === "string" ? document.querySelector(target) : target;
    if (!root) throw new Error("quotaflow widget: no element matches " + target);
    if (root.quotaflowWidget) root.quotaflowWidget.destroy();
    var config = readConfig(root, options || {});
    if (config.styles) injectStyles();
    var instance = new Widget(root, config);
    var handle = {
      refresh: function () { return instance.refresh(); },
      setUserToken: function (token) {
        instance.config.userToken = token;
        if (instance.stopped) {
          instance.stopped = false;
          document.addEventListener("visibilitychange", instance.onVisibility);
        }
        return instance.refresh();
      },
      destroy: function () {
        var inflight = instance.inflight;
        instance.stop();
        instance.inflight = null;
        if (inflight) inflight.abort();
        root.replaceChildren();
        root.classList.remove("qf-widget", "qf-widget--error", "qf-widget--stale");
        delete root.quotaflowWidget;
      }
    };
    root.quotaflowWidget = handle;
    return handle;
  }

  function autoInit() {
    var nodes = document.querySelectorAll("[data-quotaflow-widget]");
    Array.prototype.forEach.call(nodes, function (node) {
      if (node.quotaflowWidget) return;
      try {
        widget(node, {});
      } catch (error) {
        if (window.console) console.error(error);
      }
    });
  }

  window.Quotaflow = window.Quotaflow || {};
  window.Quotaflow.widget = widget;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", autoInit);
  else autoInit();
})();
