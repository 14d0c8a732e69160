
"use strict";
// Renders the report's cells from the two JSON blocks, one page at a time, so a job of 100,000
// executions never has more than one page of answers in the document. Answer text is hostile
// input: it only ever reaches the page as textContent (or a Text node), never as markup.
(() => {
  const LABELS = ["substantive", "refusal", "empty", "technical_failure", "no_record"];
  const LABEL_TEXT = ["substantive", "refusal", "empty", "technical failure", "no record"];
  const REFUSAL = 1;
  const EMPTY = 2;
  const FAILURE = 3;
  const NO_RECORD = 4;
  const PAGE_SIZE = 25;
  const SHOWN_CHARS = 1500;

  const parse = (id) => JSON.parse(document.getElementById(id).textContent);
  // answers[i] = [status, text, error code, error message, attempts]
  const answers = parse("beacon-answers");
  // cells[i] = [question, model, divergence or null, label split (0/1), entries], ranked;
  // entries[j] = [region, label, answer index or -1, label score, evidence or null]
  const index = parse("beacon-index");
  const { questions, models, regions, cells } = index;

  const list = document.getElementById("cell-list");
  const form = document.getElementById("filters");
  const status = document.getElementById("filter-status");
  const pagers = Array.from(document.querySelectorAll(".pager"));
  const filters = {
    question: document.getElementById("filter-question"),
    model: document.getElementById("filter-model"),
    region: document.getElementById("filter-region"),
    label: document.getElementById("filter-label"),
  };
  const state = { question: -1, model: -1, region: -1, label: -1, page: 0 };
  let visible = [];

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function cellId(cell) {
    return "cell=" + encodeURIComponent(questions[cell[0]][0]) + "/" + encodeURIComponent(models[cell[1]]);
  }
  const byId = new Map(cells.map((cell, i) => [cellId(cell), i]));

  function fill(select, names) {
    names.forEach((name, i) => {
      const option = el("option", "", name);
      option.value = String(i);
      select.append(option);
    });
  }

  function matches(cell) {
    if (state.question >= 0 && cell[0] !== state.question) return false;
    if (state.model >= 0 && cell[1] !== state.model) return false;
    if (state.region < 0 && state.label < 0) return true;
    // With a region and a label: that region's answer has that label.
    return cell[4].some(
      (entry) =>
        (state.region < 0 || entry[0] === state.region) && (state.label < 0 || entry[1] === state.label),
    );
  }

  function refilter() {
    visible = [];
    for (let i = 0; i < cells.length; i++) if (matches(cells[i])) visible.push(i);
  }

  function pageCount() {
    return Math.max(1, Math.ceil(visible.length / PAGE_SIZE));
  }

  function renderText(text) {
    const block = el("div", "text");
    block.dir = "auto";
    if (text.length <= SHOWN_CHARS) {
      block.textContent = text;
      return block;
    }
    let cut = SHOWN_CHARS;
    const last = text.charCodeAt(cut - 1);
    if (last >= 0xd800 && last <= 0xdbff) cut -= 1; // do not split a surrogate pair
    block.textContent = text.slice(0, cut) + "\u2026";
    const more = el("button", "more", "Show all " + text.length.toLocaleString("en") + " characters");
    more.type = "button";
    more.addEventListener("click", () => {
      block.textContent = text;
      more.remove();
    });
    const wrap = el("div");
    wrap.append(block, more);
    return wrap;
  }

  function renderAnswer(entry) {
    const [region, label, at, score, evidence] = entry;
    const answer = at >= 0 ? answers[at] : null;
    const box = el("section", "answer k-" + LABELS[label]);
    box.dataset.region = regions[region];
    box.dataset.label = LABELS[label];
    const head = el("div", "answer-head");
    // A technical failure shows its status: failed, timeout, cancelled or skipped.
    const badge = label === FAILURE && answer ? answer[0] : LABEL_TEXT[label];
    head.append(el("span", "region", regions[region]), el("span", "badge", badge));
    box.append(head);
    if (label === NO_RECORD || !answer) {
      box.append(el("p", "note", "No record: this execution has not run."));
      return box;
    }
    const [, text, code, message, attempts] = answer;
    if (label === FAILURE) {
      const error = el("p", "error");
      error.append(el("strong", "", code || answer[0]));
      if (message) error.append(": " + message);
      box.append(error, el("p", "meta", attempts + (attempts === 1 ? " attempt" : " attempts")));
    } else if (label === EMPTY) {
      box.append(el("p", "note", "Empty answer."));
    } else if (label === REFUSAL) {
      const cue = evidence ? ", on \u201c" + evidence + "\u201d" : "";
      box.append(el("p", "evidence", "Refusal, score " + score.toFixed(2) + cue));
    }
    if (text) box.append(renderText(text));
    return box;
  }

  function renderCell(i) {
    const cell = cells[i];
    const [question, model, divergence, split, entries] = cell;
    const article = el("article", split ? "cell split" : "cell");
    article.id = cellId(cell);
    const head = el("header", "cell-head");
    const link = el("a", "rank", "#" + (i + 1));
    link.href = "#" + article.id;
    link.title = "Link to this question \u00d7 model";
    const title = el("h3");
    title.append(link, " ", el("span", "qid", questions[question][0]), " \u00d7 ", el("span", "mid", models[model]));
    const figure =
      divergence === null ? "divergence n/a (fewer than two answers)" : "divergence " + divergence.toFixed(2);
    head.append(title, el("span", "divergence", figure));
    if (split) head.append(el("span", "badge split-badge", "labels differ"));
    const grid = el("div", "regions");
    for (const entry of entries) grid.append(renderAnswer(entry));
    article.append(head, el("p", "prompt", questions[question][1]), grid);
    return article;
  }

  function render() {
    const pages = pageCount();
    state.page = Math.min(Math.max(state.page, 0), pages - 1);
    const start = state.page * PAGE_SIZE;
    const shown = visible.slice(start, start + PAGE_SIZE);
    const page = document.createDocumentFragment();
    for (const i of shown) page.append(renderCell(i));
    if (!shown.length) page.append(el("p", "none", "No question \u00d7 model matches these filters."));
    list.replaceChildren(page);
    status.textContent = shown.length
      ? "Showing " + (start + 1) + "\u2013" + (start + shown.length) + " of " + visible.length +
        " matching (of " + cells.length + " question \u00d7 model blocks)."
      : "0 of " + cells.length + " question \u00d7 model blocks match.";
    for (const pager of pagers) {
      pager.querySelector(".page-of").textContent = "page " + (state.page + 1) + " of " + pages;
      for (const button of pager.querySelectorAll("button")) {
        const back = button.dataset.go === "first" || button.dataset.go === "prev";
        button.disabled = back ? state.page === 0 : state.page >= pages - 1;
      }
    }
  }

  function go(where) {
    const last = pageCount() - 1;
    const to = { first: 0, prev: state.page - 1, next: state.page + 1, last: last }[where];
    state.page = Math.min(Math.max(to, 0), last);
    render();
    list.scrollIntoView({ block: "start" });
  }

  function clearFilters() {
    for (const name of Object.keys(filters)) {
      filters[name].value = "-1";
      state[name] = -1;
    }
  }

  function showHash() {
    const id = location.hash.slice(1);
    if (!byId.has(id)) return false;
    const i = byId.get(id);
    let position = visible.indexOf(i);
    if (position < 0) {
      clearFilters();
      refilter();
      position = visible.indexOf(i);
    }
    state.page = Math.floor(position / PAGE_SIZE);
    render();
    const target = document.getElementById(id);
    target.classList.add("target");
    target.scrollIntoView({ block: "start" });
    return true;
  }

  fill(filters.question, questions.map((question) => question[0]));
  fill(filters.model, models);
  fill(filters.region, regions);
  fill(filters.label, LABEL_TEXT);
  for (const [name, select] of Object.entries(filters)) {
    select.addEventListener("change", () => {
      state[name] = Number(select.value);
      state.page = 0;
      refilter();
      render();
    });
  }
  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("reset", (event) => {
    event.preventDefault();
    clearFilters();
    state.page = 0;
    refilter();
    render();
  });
  for (const pager of pagers) {
    for (const button of pager.querySelectorAll("button")) {
      button.addEventListener("click", () => go(button.dataset.go));
    }
  }
  window.addEventListener("hashchange", showHash);
  refilter();
  if (!showHash()) render();
  document.documentElement.dataset.ready = "1";
})();
