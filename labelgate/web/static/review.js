// labelgate review page: keyboard-first decisions, posted as JSON to the review API.
// Texts are only ever set with textContent (never innerHTML): row texts are untrusted data.
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("lg-data").textContent);
  const runPath = "/api/runs/" + encodeURIComponent(data.run_id);
  const toast = document.getElementById("toast");
  const reviewerInput = document.getElementById("reviewer");
  let active = 0;
  let busy = false;

  const saved = window.localStorage.getItem("labelgate.reviewer");
  if (saved && reviewerInput) reviewerInput.value = saved;
  if (reviewerInput) {
    reviewerInput.addEventListener("change", () => {
      window.localStorage.setItem("labelgate.reviewer", reviewerInput.value.trim());
    });
  }

  function rows() {
    return Array.from(document.querySelectorAll("tr.item"));
  }

  function rowById(id) {
    return rows().find((r) => r.dataset.id === id) || null;
  }

  function reviewer() {
    const name = reviewerInput ? reviewerInput.value.trim() : "";
    return name || data.reviewer;
  }

  function say(message, kind) {
    toast.textContent = message;
    toast.className = "show" + (kind ? " " + kind : "");
    clearTimeout(say.timer);
    say.timer = setTimeout(() => (toast.className = ""), kind === "error" ? 6000 : 2500);
  }

  async function call(method, path, body) {
    const options = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(runPath + path, options);
    let payload = {};
    try {
      payload = await response.json();
    } catch (err) {
      payload = {};
    }
    if (!response.ok) {
      const err = new Error(payload.error || "HTTP " + response.status);
      err.status = response.status; // the server answered (a fetch that got no answer throws a TypeError instead)
      throw err;
    }
    return payload;
  }

  function setActive(index, scroll) {
    const all = rows();
    if (!all.length) return;
    active = Math.max(0, Math.min(index, all.length - 1));
    all.forEach((r, i) => r.classList.toggle("active", i === active));
    if (scroll !== false) all[active].scrollIntoView({ block: "nearest" });
  }

  function showState(row, state) {
    // state: {action, label, source, reviewer} or {action: null} for "not reviewed"
    row.classList.remove("decided", "act-keep", "act-relabel", "act-exclude", "by-policy");
    const text = row.querySelector(".state");
    const who = row.querySelector(".who");
    if (!state.action) {
      text.textContent = "not reviewed";
      who.textContent = "";
      return;
    }
    row.classList.add("decided", "act-" + state.action);
    if (state.source === "policy") row.classList.add("by-policy");
    if (state.action === "exclude") text.textContent = "excluded";
    else if (state.action === "relabel") text.textContent = "\u2192 " + state.label;
    else text.textContent = "kept " + state.label;
    who.textContent = state.source === "policy" ? "policy" : state.reviewer || "";
    row.classList.add("flash");
    setTimeout(() => row.classList.remove("flash"), 400);
  }

  function showProgress(p) {
    if (!p) return;
    data.progress = p;
    const bar = document.getElementById("progress-bar");
    bar.max = Math.max(p.flagged, 1);
    bar.value = p.reviewed;
    const text = document.getElementById("progress-text");
    text.textContent = "";
    const b = document.createElement("b");
    b.textContent = String(p.reviewed);
    text.append(b, " / " + p.flagged + " reviewed");
  }

  async function decide(items, note) {
    if (busy || !items.length) return null;
    busy = true;
    try {
      const body = items.length === 1 ? Object.assign({}, items[0]) : { decisions: items };
      body.reviewer = reviewer();
      if (note) body.note = note;
      const result = await call("POST", "/decisions", body);
      result.recorded.forEach((d) => {
        const row = rowById(d.id);
        if (row) showState(row, { action: d.action, label: d.label, source: "human", reviewer: d.reviewer });
      });
      showProgress(result.progress);
      return result;
    } catch (err) {
      say(err.message, "error");
      return null;
    } finally {
      busy = false;
    }
  }

  async function decideRow(row, action, label) {
    if (!row) return;
    const index = rows().indexOf(row);
    const item = { id: row.dataset.id, action: action };
    if (label !== undefined) item.label = label;
    const result = await decide([item]);
    if (result) setActive(index + 1);
  }

  async function undo() {
    if (busy) return;
    busy = true;
    try {
      const result = await call("POST", "/undo", { reviewer: reviewer() });
      if (!result.restored.length) {
        say("Nothing to undo");
        return;
      }
      result.restored.forEach((s) => {
        const row = rowById(s.id);
        if (row) showState(row, s.decided ? { action: s.action, label: s.label, source: "human" } : { action: null });
      });
      const first = rowById(result.restored[0].id);
      if (first) setActive(rows().indexOf(first));
      showProgress(result.progress);
      say("Undid " + result.restored.length + (result.restored.length === 1 ? " decision" : " decisions"));
    } catch (err) {
      say(err.message, "error");
    } finally {
      busy = false;
    }
  }

  async function bulkTopK() {
    const k = parseInt(document.getElementById("topk").value, 10);
    const chosen = rows()
      .slice(0, Math.max(0, k || 0))
      .filter((r) => r.dataset.accept);
    if (!chosen.length) return;
    const result = await decide(
      chosen.map((r) => ({ id: r.dataset.id, action: "accept" })),
      "bulk: accept suggestions for the top " + chosen.length + " shown",
    );
    if (result) say("Accepted suggestions for " + result.recorded.length + " rows");
  }

  async function bulkFilter(action) {
    const query = new URLSearchParams(data.filters);
    for (const [key, value] of Array.from(query.entries())) if (!value) query.delete(key);
    let ids;
    try {
      const listing = await call("GET", "/issues?" + query.toString());
      ids = listing.items.filter((it) => action !== "accept" || it.accept_action).map((it) => it.id);
    } catch (err) {
      say(err.message, "error");
      return;
    }
    const verb = { accept: "Accept the suggestions for", keep: "Keep the given label of", exclude: "Exclude" }[action];
    if (!ids.length || !window.confirm(verb + " all " + ids.length + " rows in this filter?")) return;
    const result = await decide(
      ids.map((id) => ({ id: id, action: action })),
      "bulk: " + action + " all " + ids.length + " rows of a filter",
    );
    if (result) say("Recorded " + result.recorded.length + " decisions");
  }

  async function finish(action) {
    try {
      const result = await call("POST", "/finish", { action: action, reviewer: reviewer() });
      say(result.message, result.resumed ? "ok" : "");
      if (result.resumed) {
        document.body.classList.add("finished");
        const button = document.getElementById("finish");
        if (button) button.remove();
        const badge = document.querySelector(".badge-awaiting_review");
        if (badge) badge.textContent = "review finished · exporting";
        watchOutcome(badge);
      }
    } catch (err) {
      say(err.message, "error");
    }
  }

  // After "Finish review" the flow exports and its process (with this page's server) then exits:
  // poll the run's outcome and show it (files, counts, or the failure) while the server still answers.
  function line(box, text, tag) {
    const el = document.createElement(tag || "p");
    el.textContent = text;
    box.append(el);
    return el;
  }

  // requests in a row that get no answer at all before the page says the process stopped
  const GONE_AFTER = 3;

  async function watchOutcome(badge) {
    const box = document.getElementById("outcome");
    box.hidden = false;
    box.className = "note outcome outcome-waiting";
    box.textContent = "";
    line(box, "Review finished: the flow is exporting. The outcome appears here.");
    const waiting = line(box, "");
    let unanswered = 0;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 700));
      let o;
      try {
        o = await call("GET", "/outcome");
        unanswered = 0;
        waiting.textContent = "";
      } catch (err) {
        if (err.status) {
          // the server answered with an error (e.g. the database busy for a moment): it still runs, ask again
          waiting.textContent = "Still waiting (the server answered: " + err.message + ")";
          continue;
        }
        unanswered += 1;
        if (unanswered < GONE_AFTER) continue; // one lost request is not yet a stopped process
        box.className = "note outcome outcome-gone";
        box.textContent = "";
        line(box, "The run's process stopped (and this page's server with it) before the outcome could be shown.");
        line(box, "See it in the terminal that ran labelgate, or with: labelgate runs --db " + data.db_path, "code");
        if (badge) badge.textContent = "review finished";
        return;
      }
      if (!o.final) continue;
      showOutcome(box, badge, o);
      return;
    }
  }

  function showOutcome(box, badge, o) {
    box.textContent = "";
    const ok = o.status === "completed";
    box.className = "note outcome " + (ok ? "outcome-completed" : "outcome-failed");
    if (badge) {
      badge.textContent = ok ? "completed" : o.status;
      badge.className = "badge badge-" + o.status;
    }
    if (!ok) {
      line(box, "The run " + o.status + (o.message ? ": " + o.message : "") + ". The decisions are stored.");
      return;
    }
    const d = o.decisions || {};
    line(
      box,
      "Exported " + o.exported_train + " train and " + o.exported_val + " validation rows" +
        " (decisions: keep " + (d.keep || 0) + ", relabel " + (d.relabel || 0) + ", exclude " + (d.exclude || 0) + ").",
    );
    const list = line(box, "", "ul");
    list.className = "outcome-files";
    o.files.forEach((f) => line(list, f, "li"));
    o.warnings.forEach((w) => line(box, "warning: " + w).classList.add("outcome-warning"));
    line(box, "This page's server stops with the run; `labelgate serve --db " + data.db_path + "` reopens it.");
  }

  // --- wiring ---------------------------------------------------------------------------------

  document.addEventListener("click", (event) => {
    const link = event.target.closest("a.related-link");
    if (link) {
      // a related row shown on this page: go to it; else the link opens it (all rows, searched by id)
      const other = rowById(link.dataset.row);
      if (other) {
        event.preventDefault();
        setActive(rows().indexOf(other));
        other.classList.add("flash");
        setTimeout(() => other.classList.remove("flash"), 600);
      }
      return;
    }
    const target = event.target.closest("button, tr.item");
    if (!target) return;
    const row = target.closest("tr.item");
    if (target.matches("tr.item")) {
      setActive(rows().indexOf(row), false);
      return;
    }
    if (row) setActive(rows().indexOf(row), false);
    if (target.dataset.act) decideRow(row, target.dataset.act);
    else if (target.classList.contains("cls")) decideRow(row, "relabel", target.dataset.label);
    else if (target.dataset.bulk) bulkFilter(target.dataset.bulk);
    else if (target.id === "bulk-topk") bulkTopK();
    else if (target.id === "undo") undo();
    else if (target.id === "finish") openFinish();
  });

  document.addEventListener("change", (event) => {
    const el = event.target;
    if (el.classList.contains("cls-more") && el.value) {
      decideRow(el.closest("tr.item"), "relabel", el.value);
      el.value = "";
    } else if (el.closest("#filters") && el.tagName === "SELECT") {
      el.form.submit();
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input, select, textarea, dialog")) return;
    const key = event.key.toLowerCase();
    const all = rows();
    const row = all[active];
    let handled = true;
    if (key === "j" || key === "arrowdown") setActive(active + 1);
    else if (key === "k" || key === "arrowup") setActive(active - 1);
    else if (key === "w") {
      if (row && row.dataset.accept) decideRow(row, "accept");
    } else if (key === "q") decideRow(row, "keep");
    else if (key === "e") decideRow(row, "exclude");
    else if (key === "u") undo();
    else if (/^[1-9]$/.test(key)) {
      const label = data.classes[parseInt(key, 10) - 1];
      if (label !== undefined) decideRow(row, "relabel", label);
    } else handled = false;
    if (handled) event.preventDefault();
  });

  const dialog = document.getElementById("finish-dialog");
  function openFinish() {
    const p = data.progress;
    document.getElementById("finish-summary").textContent =
      "You reviewed " + p.reviewed + " of " + p.flagged + " flagged rows; " + p.remaining + " are not reviewed.";
    dialog.showModal();
  }
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "finish" || dialog.returnValue === "auto") finish(dialog.returnValue);
  });

  function measureTopbar() {
    const bar = document.querySelector(".topbar");
    if (bar) document.documentElement.style.setProperty("--topbar", bar.offsetHeight + "px");
  }
  window.addEventListener("resize", measureTopbar);
  measureTopbar();
  setActive(0, false);
})();
