// Reviewer page for Ticket Triage: plain JavaScript over the JSON API (/reviews, /model).
// The review key lives in sessionStorage (this tab only) and is sent only in the Authorization header.
"use strict";

(() => {
  const STORE_KEY = "triage.review.key";
  const STORE_NAME = "triage.review.name";
  const TOP_N = 3;
  const MAX_SHORTCUT = 9;
  const STATS_EVERY_MS = 20000;

  const base = document.body.dataset.apiBase || "";
  const $ = (id) => document.getElementById(id);

  const state = {
    key: null,
    name: null,
    categories: [],
    priorities: null,
    tags: null,
    item: null,
    selected: null,
    mine: 0,
    busy: false,
    leaseDeadline: 0,
    leaseTimer: null,
    statsTimer: null,
    leaseWarned: false,
  };

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // --- the API -------------------------------------------------------------------------------------

  async function api(method, path, { body, key } = {}) {
    const headers = { Accept: "application/json", Authorization: `Bearer ${key || state.key}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (err) {
      throw new ApiError(0, "network", "the service did not answer");
    }
    if (response.status === 204) return null;
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const detail = data && data.error ? data.error : {};
      throw new ApiError(response.status, detail.code || "error", detail.message || `HTTP ${response.status}`);
    }
    return data;
  }

  // --- messages ------------------------------------------------------------------------------------

  function explain(err) {
    if (!(err instanceof ApiError)) return `Something went wrong in this page: ${err && err.message ? err.message : err}`;
    switch (err.status) {
      case 0:
        return "Cannot reach the service. Check your connection, then try again.";
      case 401:
        return `Your key was not accepted (401). Check the key and sign in again. (${err.message})`;
      case 403:
        return `This key may not review tickets (403): ${err.message}`;
      case 404:
        return `That ticket no longer exists (404): ${err.message}`;
      case 409:
        return `You no longer hold this ticket (409, lease lost or already answered): ${err.message}. Claim the next ticket.`;
      case 422:
        return `The answer was refused (422): ${err.message}`;
      case 503:
        return "The review store is unavailable right now (503). Nothing was lost; try again in a moment.";
      default:
        return `The service failed to answer (${err.status}): ${err.message}`;
    }
  }

  function showMessage(text, kind = "error") {
    const box = $("message");
    $("message-text").textContent = text;
    box.className = `message message-${kind}`;
    box.hidden = false;
  }

  function clearMessage() {
    $("message").hidden = true;
    $("message-text").textContent = "";
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  // One place decides what an API failure does to the page; the message always says what happened.
  function fail(err) {
    showMessage(explain(err));
    if (err instanceof ApiError && err.status === 401) {
      forgetSession();
      showSignIn();
    } else if (err instanceof ApiError && (err.status === 409 || err.status === 404)) {
      dropItem("Claim the next ticket to continue.");
      refreshStats();
    }
  }

  // --- session -------------------------------------------------------------------------------------

  function forgetSession() {
    sessionStorage.removeItem(STORE_KEY);
    sessionStorage.removeItem(STORE_NAME);
    state.key = null;
    state.name = null;
    state.mine = 0;
    stopTimers();
    dropItem();
  }

  function showSignIn() {
    $("workspace").hidden = true;
    $("stats").hidden = true;
    $("session").hidden = true;
    $("signin").hidden = false;
    const input = $("key");
    input.value = "";
    input.focus();
  }

  function showWorkspace() {
    $("signin").hidden = true;
    $("workspace").hidden = false;
    $("stats").hidden = false;
    $("session").hidden = false;
    renderWho();
    renderMine();
  }

  function renderWho() {
    $("who").textContent = state.name ? `Signed in as ${state.name}` : "Signed in";
  }

  function renderMine() {
    $("stat-mine").textContent = String(state.mine);
  }

  async function signIn(key, { quiet = false } = {}) {
    setBusy(true);
    try {
      // Both calls check the key; /model also gives the labels the picker offers.
      const [stats, model] = await Promise.all([
        api("GET", "/reviews/stats", { key }),
        api("GET", "/model", { key }),
      ]);
      state.key = key;
      sessionStorage.setItem(STORE_KEY, key);
      const targets = (model && model.targets) || {};
      state.categories = targets.category ? [...targets.category.labels] : [];
      state.priorities = targets.priority ? [...targets.priority.labels] : null;
      state.tags = Array.isArray(model.tags) ? [...model.tags] : null;
      renderTagOptions();
      state.name = sessionStorage.getItem(STORE_NAME);
      clearMessage();
      showWorkspace();
      renderStats(stats);
      startStatsTimer();
      const restored = await restoreClaim();
      if (!restored) $("claim").focus();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) sessionStorage.removeItem(STORE_KEY);
      if (!quiet || !(err instanceof ApiError) || err.status !== 401) showMessage(explain(err));
      if (!state.key) showSignIn();
    } finally {
      setBusy(false);
    }
  }

  async function signOut() {
    const item = state.item;
    if (item) {
      try {
        await api("POST", `/reviews/${item.id}/release`);
      } catch (err) {
        // The lease runs out on its own; signing out must not depend on the service.
      }
    }
    forgetSession();
    clearMessage();
    showSignIn();
    setStatus("");
  }

  // A reload keeps the ticket this reviewer holds instead of stranding it until its lease ends.
  async function restoreClaim() {
    if (!state.name) return false;
    const list = await api("GET", "/reviews?status=claimed&limit=200");
    const mine = (list.items || []).find((i) => i.claimed_by === state.name);
    if (!mine) return false;
    showItem(mine, Date.parse(mine.lease_expires_at) - Date.now());
    setStatus(`Resumed review item ${mine.id}, which you still hold.`);
    return true;
  }

  // --- queue figures -------------------------------------------------------------------------------

  function renderStats(stats) {
    $("stat-pending").textContent = String(stats.pending);
    $("stat-claimed").textContent = String(stats.claimed);
    $("stat-today").textContent = String(stats.resolved_today);
    // The server counts the caller's resolutions, across browsers and sessions.
    if (stats.reviewer) {
      state.name = stats.reviewer;
      sessionStorage.setItem(STORE_NAME, stats.reviewer);
      renderWho();
    }
    if (typeof stats.resolved_by_reviewer_today === "number") {
      state.mine = stats.resolved_by_reviewer_today;
      renderMine();
    }
  }

  async function refreshStats({ quiet = false } = {}) {
    if (!state.key) return;
    try {
      renderStats(await api("GET", "/reviews/stats"));
    } catch (err) {
      if (!quiet || (err instanceof ApiError && err.status === 401)) fail(err);
    }
  }

  function startStatsTimer() {
    clearInterval(state.statsTimer);
    state.statsTimer = setInterval(() => {
      if (!document.hidden) refreshStats({ quiet: true });
    }, STATS_EVERY_MS);
  }

  function stopTimers() {
    clearInterval(state.statsTimer);
    clearInterval(state.leaseTimer);
    state.statsTimer = null;
    state.leaseTimer = null;
  }

  // --- the ticket ----------------------------------------------------------------------------------

  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  function text(value) {
    return value === null || value === undefined || value === "" ? "—" : String(value);
  }

  function when(iso) {
    if (!iso) return "—";
    const t = Date.parse(iso);
    return Number.isNaN(t) ? iso : dateFormat.format(new Date(t));
  }

  function percent(p) {
    return `${(p * 100).toFixed(1)}%`;
  }

  function showItem(item, leaseMs) {
    state.item = item;
    state.selected = null;
    if (item.claimed_by) {
      state.name = item.claimed_by;
      sessionStorage.setItem(STORE_NAME, item.claimed_by);
      renderWho();
    }
    $("item-id").textContent = `#${item.id}`;
    $("ticket-id").textContent = text(item.ticket_id);
    $("ticket-subject").textContent = item.subject || "(no subject)";
    $("f-channel").textContent = text(item.channel);
    $("f-tier").textContent = text(item.customer_tier);
    $("f-urgency").textContent = text(item.urgency);
    $("f-created").textContent = when(item.created_at);
    $("f-priority").textContent = text(item.predicted_priority);
    $("f-model").textContent = text(item.model_version);
    $("f-description").textContent = item.description || "(no description)";
    loadEvidence(item);
    renderTags(item);
    $("category-search").value = "";
    $("note").value = "";
    renderPriority(item);
    renderChoices();
    $("empty").hidden = true;
    $("ticket").hidden = false;
    startLease(leaseMs);
    const heading = $("ticket-subject");
    heading.tabIndex = -1;
    heading.focus();
  }

  // --- tags: the model's, ticked; the reviewer unticks wrong ones and adds missing ones ----------------

  function renderTagOptions() {
    const options = $("tag-options");
    options.replaceChildren();
    for (const tag of state.tags || []) {
      const option = document.createElement("option");
      option.value = tag;
      options.append(option);
    }
    $("tags-box").hidden = !state.tags;
  }

  function addTagBox(tag, checked) {
    const list = $("tag-list");
    if ([...list.querySelectorAll("input")].some((box) => box.value === tag)) return;
    const row = document.createElement("li");
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.name = "tag";
    box.value = tag;
    box.checked = checked;
    label.append(box, document.createTextNode(` ${tag}`));
    row.append(label);
    list.append(row);
  }

  function renderTags(item) {
    $("tag-list").replaceChildren();
    $("tag-add").value = "";
    $("tag-add-error").hidden = true;
    if (!state.tags) return;
    for (const tag of item.predicted_tags || []) addTagBox(tag, true);
  }

  function addTypedTag() {
    const tag = $("tag-add").value.trim();
    if (!tag) return;
    if (!(state.tags || []).includes(tag)) {
      $("tag-add-error").textContent = `Not a tag this model knows: ${tag}`;
      $("tag-add-error").hidden = false;
      return;
    }
    $("tag-add-error").hidden = true;
    addTagBox(tag, true);
    $("tag-add").value = "";
  }

  function checkedTags() {
    return [...$("tag-list").querySelectorAll("input:checked")].map((box) => box.value);
  }

  // --- evidence: the words behind the two most likely categories, highlighted in the ticket ----------

  // Each word goes to the label it raises most; a span is text[start:end] of the field as stored.
  function spansByField(labels) {
    const best = new Map();
    labels.forEach((evidence, rank) => {
      for (const w of evidence.words) {
        const key = `${w.field}:${w.start}:${w.end}`;
        const seen = best.get(key);
        if (!seen || w.weight > seen.weight) best.set(key, { ...w, rank, label: evidence.label });
      }
    });
    const out = { subject: [], description: [] };
    for (const w of best.values()) if (out[w.field]) out[w.field].push(w);
    for (const field of Object.keys(out)) out[field].sort((a, b) => a.start - b.start);
    return out;
  }

  // Rebuilds an element's text with <mark>s, using text nodes only: nothing the ticket holds is parsed.
  function highlight(element, text, spans) {
    element.replaceChildren();
    let at = 0;
    for (const s of spans) {
      if (s.start < at || s.end > text.length || text.slice(s.start, s.end) !== s.word) continue;
      element.append(document.createTextNode(text.slice(at, s.start)));
      const mark = document.createElement("mark");
      mark.className = `ev ev-${s.rank}`;
      mark.title = `raises ${s.label} by ${(s.weight * 100).toFixed(1)} points`;
      mark.textContent = s.word;
      element.append(mark);
      at = s.end;
    }
    element.append(document.createTextNode(text.slice(at)));
  }

  function renderEvidence(item, explanation) {
    const spans = spansByField(explanation.labels);
    if (item.subject) highlight($("ticket-subject"), item.subject, spans.subject);
    if (item.description) highlight($("f-description"), item.description, spans.description);
    const list = $("evidence-list");
    list.replaceChildren();
    explanation.labels.forEach((evidence, rank) => {
      const row = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = `swatch ev-${rank}`;
      swatch.setAttribute("aria-hidden", "true");
      const name = document.createElement("strong");
      name.textContent = `${evidence.label} (${percent(evidence.probability)})`;
      const words = evidence.words.map((w) => w.word);
      row.append(swatch, name, document.createTextNode(words.length ? `: ${words.join(", ")}` : ": no single word stands out"));
      list.append(row);
    });
    $("evidence-status").textContent = "Highlighted: the words that pushed the model towards each of its two best guesses.";
  }

  // Asked for only once an item has stayed on screen a moment: each explanation costs the service
  // hundreds of model rows, and a reviewer skipping through the queue needs none of them.
  const EVIDENCE_DELAY_MS = 700;

  async function loadEvidence(item) {
    $("evidence-list").replaceChildren();
    $("evidence-status").textContent = "Looking for the words behind the two most likely categories…";
    await new Promise((resolve) => setTimeout(resolve, EVIDENCE_DELAY_MS));
    if (!state.item || state.item.id !== item.id) return;
    try {
      const explanation = await api("GET", `/reviews/${item.id}/explanation`);
      if (state.item && state.item.id === item.id && explanation) renderEvidence(item, explanation);
    } catch (err) {
      if (state.item && state.item.id === item.id) $("evidence-status").textContent = `No explanation: ${explain(err)}`;
    }
  }

  function dropItem(note) {
    state.item = null;
    state.selected = null;
    clearInterval(state.leaseTimer);
    state.leaseTimer = null;
    $("ticket").hidden = true;
    $("empty").hidden = false;
    if (note) $("empty-text").textContent = note;
  }

  function renderPriority(item) {
    const select = $("priority");
    select.replaceChildren();
    const keep = document.createElement("option");
    keep.value = "";
    keep.textContent = `Keep the model's (${text(item.predicted_priority)})`;
    select.append(keep);
    for (const label of state.priorities || []) {
      const option = document.createElement("option");
      option.value = label;
      option.textContent = label;
      select.append(option);
    }
    select.disabled = !state.priorities;
  }

  function topLabels() {
    return (state.item ? state.item.top_labels : []).slice(0, TOP_N);
  }

  // The other categories, filtered by the search box; numbered after the top guesses.
  function otherLabels() {
    const top = new Set(topLabels().map((t) => t.label));
    const query = $("category-search").value.trim().toLowerCase();
    return state.categories.filter((label) => !top.has(label) && label.toLowerCase().includes(query));
  }

  function choiceOrder() {
    return [...topLabels().map((t) => t.label), ...otherLabels()];
  }

  function choice(label, index, probability) {
    const id = `choice-${index}`;
    const item = document.createElement("li");
    item.className = "choice";
    item.dataset.label = label;
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "category";
    input.id = id;
    input.value = label;
    input.checked = state.selected === label;
    input.addEventListener("change", () => select(label, false));
    const tag = document.createElement("label");
    tag.htmlFor = id;
    const key = document.createElement("kbd");
    key.className = "choice-key";
    key.textContent = index < MAX_SHORTCUT ? String(index + 1) : "";
    key.setAttribute("aria-hidden", "true");
    const name = document.createElement("span");
    name.className = "choice-name";
    name.textContent = label;
    name.title = label;
    tag.append(key, name);
    if (probability !== undefined) {
      item.dataset.probability = String(probability);
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.setAttribute("aria-hidden", "true");
      const fill = document.createElement("span");
      fill.className = "bar-fill";
      fill.style.width = `${Math.max(0, Math.min(1, probability)) * 100}%`;
      bar.append(fill);
      const value = document.createElement("span");
      value.className = "choice-prob";
      value.textContent = percent(probability);
      tag.append(bar, value);
    }
    item.append(input, tag);
    return item;
  }

  function renderChoices() {
    const top = topLabels();
    $("top-labels").replaceChildren(...top.map((t, i) => choice(t.label, i, t.probability)));
    const others = otherLabels();
    $("all-labels").replaceChildren(...others.map((label, i) => choice(label, top.length + i)));
    $("all-labels-empty").hidden = others.length > 0;
    renderSelected();
  }

  function renderSelected() {
    const chosen = state.selected;
    $("selected").textContent = chosen ? `Selected: ${chosen}` : "No category selected yet";
    for (const input of document.querySelectorAll('input[name="category"]')) {
      input.checked = input.value === chosen;
    }
  }

  function select(label, focus) {
    state.selected = label;
    renderSelected();
    if (focus) {
      const input = [...document.querySelectorAll('input[name="category"]')].find((i) => i.value === label);
      if (input) input.focus();
    }
  }

  // --- the lease -----------------------------------------------------------------------------------

  function startLease(leaseMs) {
    clearInterval(state.leaseTimer);
    state.leaseWarned = false;
    state.leaseDeadline = Date.now() + Math.max(0, leaseMs || 0);
    tickLease();
    state.leaseTimer = setInterval(tickLease, 1000);
  }

  function tickLease() {
    const left = Math.round((state.leaseDeadline - Date.now()) / 1000);
    const lease = $("lease");
    if (left <= 0) {
      $("lease-left").textContent = "expired";
      lease.className = "lease lease-expired";
      if (!state.leaseWarned) {
        state.leaseWarned = true;
        showMessage("Your lease on this ticket ran out: someone else may claim it, and resolving may be refused.", "warning");
      }
      clearInterval(state.leaseTimer);
      return;
    }
    const minutes = Math.floor(left / 60);
    const seconds = String(left % 60).padStart(2, "0");
    $("lease-left").textContent = `${minutes}:${seconds} left`;
    lease.className = left < 60 ? "lease lease-low" : "lease";
  }

  function leaseFrom(item) {
    return Date.parse(item.lease_expires_at) - Date.parse(item.claimed_at);
  }

  // --- actions -------------------------------------------------------------------------------------

  function setBusy(busy) {
    state.busy = busy;
    for (const id of ["claim", "resolve", "skip", "release", "signin-button", "refresh"]) $(id).disabled = busy;
    document.body.classList.toggle("is-busy", busy);
  }

  async function run(action) {
    if (state.busy) return;
    setBusy(true);
    try {
      await action();
    } catch (err) {
      fail(err);
    } finally {
      setBusy(false);
    }
  }

  const claimNext = () =>
    run(async () => {
      clearMessage();
      const item = await api("POST", "/reviews/claim");
      if (item === null) {
        dropItem("Nothing is waiting for review. Check back later.");
        setStatus("The queue is empty.");
        $("claim").focus();
      } else {
        showItem(item, leaseFrom(item));
        setStatus(`Claimed review item ${item.id}.`);
      }
      refreshStats(); // not awaited: the figures must not hold the page busy (and drop keys)
    });

  const resolve = () =>
    run(async () => {
      const item = state.item;
      if (!item) return;
      if (!state.selected) {
        showMessage("Pick a category first: press 1–9 or choose one from the lists.", "warning");
        return;
      }
      clearMessage();
      const body = { category: state.selected };
      const priority = $("priority").value;
      if (priority) body.priority = priority;
      const note = $("note").value.trim();
      if (note) body.note = note;
      if (state.tags) body.tags = checkedTags();
      const done = await api("POST", `/reviews/${item.id}/resolve`, { body });
      state.mine += 1; // shown at once; the stats refresh below brings the server's count
      renderMine();
      dropItem(`Resolved item ${done.id} as ${done.resolved_category}. Claim the next ticket (Enter or N).`);
      setStatus(`Resolved review item ${done.id} as ${done.resolved_category}.`);
      $("claim").focus();
      refreshStats(); // not awaited: the figures must not hold the page busy (and drop keys)
    });

  // Claim the next item before handing this one back, so the queue cannot return the same item.
  const skip = () =>
    run(async () => {
      const item = state.item;
      if (!item) return;
      clearMessage();
      const next = await api("POST", "/reviews/claim");
      if (next === null) {
        showMessage("Nothing else is waiting: keep this ticket, or release it.", "info");
        return;
      }
      await api("POST", `/reviews/${item.id}/release`);
      showItem(next, leaseFrom(next));
      setStatus(`Skipped item ${item.id} (back in the queue); claimed item ${next.id}.`);
      refreshStats(); // not awaited: the figures must not hold the page busy (and drop keys)
    });

  const release = () =>
    run(async () => {
      const item = state.item;
      if (!item) return;
      clearMessage();
      await api("POST", `/reviews/${item.id}/release`);
      dropItem(`Released item ${item.id} back to the queue.`);
      setStatus(`Released review item ${item.id}.`);
      $("claim").focus();
      refreshStats(); // not awaited: the figures must not hold the page busy (and drop keys)
    });

  // --- keyboard ------------------------------------------------------------------------------------

  function typing(el) {
    if (!el || !el.tagName) return false;
    if (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT") return true;
    return el.tagName === "INPUT" && !["radio", "checkbox", "button", "submit"].includes(el.type);
  }

  function onKey(event) {
    if (!state.key || event.altKey || event.metaKey) return;
    const target = event.target;
    if (event.key === "Enter" && event.ctrlKey && state.item && target && target.id === "note") {
      event.preventDefault();
      resolve();
      return;
    }
    if (event.ctrlKey || typing(target)) return;
    if (!state.item) {
      if (event.key === "n" || event.key === "N") {
        event.preventDefault();
        claimNext();
      }
      return;
    }
    if (/^[1-9]$/.test(event.key)) {
      const label = choiceOrder()[Number(event.key) - 1];
      if (label !== undefined) {
        event.preventDefault();
        select(label, false);
      }
    } else if (event.key === "Enter") {
      if (target && (target.tagName === "BUTTON" || target.tagName === "A")) return;
      event.preventDefault();
      resolve();
    } else if (event.key === "s" || event.key === "S") {
      event.preventDefault();
      skip();
    } else if (event.key === "/") {
      event.preventDefault();
      $("category-search").focus();
    }
  }

  function onSearchKey(event) {
    if (event.key === "Enter") {
      event.preventDefault(); // no implicit form submission from the search box
      const first = otherLabels()[0];
      if (first !== undefined) select(first, true);
    } else if (event.key === "Escape") {
      event.target.value = "";
      renderChoices();
    }
  }

  // --- wiring --------------------------------------------------------------------------------------

  function init() {
    $("signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key").value.trim();
      if (!key) {
        showMessage("Enter your review key.", "warning");
        $("key").focus();
        return;
      }
      signIn(key);
    });
    $("signout").addEventListener("click", signOut);
    $("claim").addEventListener("click", claimNext);
    $("refresh").addEventListener("click", () => refreshStats());
    $("resolve-form").addEventListener("submit", (event) => {
      event.preventDefault();
      resolve();
    });
    $("skip").addEventListener("click", skip);
    $("tag-add-button").addEventListener("click", addTypedTag);
    $("tag-add").addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        event.stopPropagation(); // Enter here adds the tag; it must not resolve the ticket
        addTypedTag();
      }
    });
    $("release").addEventListener("click", release);
    $("message-close").addEventListener("click", clearMessage);
    $("category-search").addEventListener("input", renderChoices);
    $("category-search").addEventListener("keydown", onSearchKey);
    document.addEventListener("keydown", onKey);

    const saved = sessionStorage.getItem(STORE_KEY);
    if (saved) {
      signIn(saved, { quiet: true });
    } else {
      showSignIn();
    }
  }

  init();
})();
