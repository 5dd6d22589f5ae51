// Interactivity for the flame graph: hover details, zoom, search, URL state.
// The renderer puts `var fg_settings = {...};` (JSON) just before this file.
// Names are data: they are read and written with textContent only, and reach
// RegExp only as the user's own search term or escaped.
var init = (function () {
  "use strict";
  var S = fg_settings;
  var EPS = 0.01; // rect coordinates are printed to 0.1 px
  var svg, details, unzoomBtn, searchBtn, icBtn, matchedText, framesGroup;
  var frames = []; // one record per frame, original geometry kept
  var byGroup = new Map();
  var fullWidth = 0; // width - 2 * xpad
  var root = null; // "all": the widest frame, at the base of the graph
  var rootWidth = 0;
  var zoomed = null;
  var searchTerm = null;
  var ignoreCase = false;

  function escapeRegExp(text) {
    return text.replace(/[.*+?^${}()|[\]\\\/-]/g, "\\$&");
  }

  // "NAME (1,234 samples, 12.34%[; +1.23%])" -> "NAME"
  var suffix = new RegExp(" \\(\\S+ " + escapeRegExp(S.countname) +
                          ", \\S+%(?:; \\S+%)?\\)$");

  function nameOf(title) {
    var m = suffix.exec(title);
    return m ? title.slice(0, m.index) : title;
  }

  // The renderer's rule: floor(width / char width) characters, "" below 3.
  function fitLabel(name, width) {
    var chars = Math.floor(width / (S.fontsize * S.fontwidth));
    if (chars < 3) return "";
    var points = Array.from(name);
    return chars < points.length ? points.slice(0, chars - 2).join("") + ".." : name;
  }

  function num(value) {
    return String(Math.round(value * 100) / 100);
  }

  function collect() {
    var children = framesGroup.children;
    for (var i = 0; i < children.length; i++) {
      var g = children[i];
      var title = g.querySelector("title");
      var rect = g.querySelector("rect");
      var text = g.querySelector("text");
      if (!title || !rect || !text) continue;
      var rec = {
        g: g, rect: rect, text: text,
        title: title.textContent,
        x: parseFloat(rect.getAttribute("x")),
        y: parseFloat(rect.getAttribute("y")),
        w: parseFloat(rect.getAttribute("width")),
        attrs: {x: rect.getAttribute("x"), width: rect.getAttribute("width"),
                fill: rect.getAttribute("fill"), textX: text.getAttribute("x")},
        label: text.textContent
      };
      rec.name = nameOf(rec.title);
      if (!root || rec.w > root.w + EPS ||
          (rec.w > root.w - EPS && (S.inverted ? rec.y < root.y : rec.y > root.y))) {
        root = rec;
      }
      frames.push(rec);
      byGroup.set(g, rec);
    }
    rootWidth = root ? root.w : 0;
  }

  function frameOf(node) {
    while (node && node.parentNode !== framesGroup) node = node.parentNode;
    return node ? byGroup.get(node) : undefined;
  }

  // ---- URL state: ?x=<rect x>&y=<rect y>&s=<search term> ----
  function updateUrl() {
    try {
      var params = new URLSearchParams(window.location.search);
      if (zoomed) {
        params.set("x", zoomed.attrs.x);
        params.set("y", zoomed.rect.getAttribute("y"));
      } else {
        params.delete("x");
        params.delete("y");
      }
      if (searchTerm !== null) params.set("s", searchTerm);
      else params.delete("s");
      var query = params.toString();
      history.replaceState(history.state, "", window.location.pathname +
                           (query ? "?" + query : "") + window.location.hash);
    } catch (e) {
      // file:// documents or sandboxed embedding: the view just is not shared
    }
  }

  function restoreFromUrl() {
    var params = new URLSearchParams(window.location.search);
    if (params.has("x") && params.has("y")) {
      var x = parseFloat(params.get("x")), y = parseFloat(params.get("y"));
      for (var i = 0; i < frames.length; i++) {
        var f = frames[i];
        if (Math.abs(f.x - x) < EPS && Math.abs(f.y - y) < EPS) {
          zoom(f);
          break;
        }
      }
    }
    if (params.get("s")) search(params.get("s"));
  }

  // ---- zoom ----
  function place(rec, x, w) {
    rec.rect.setAttribute("x", num(x));
    rec.rect.setAttribute("width", num(w));
    rec.text.setAttribute("x", num(x + 3));
    rec.text.textContent = fitLabel(rec.name, w);
  }

  function zoom(target) {
    if (target === root) {
      unzoom();
      return;
    }
    var ratio = fullWidth / target.w;
    var left = target.x, right = target.x + target.w;
    for (var i = 0; i < frames.length; i++) {
      var f = frames[i];
      var above = S.inverted ? f.y > target.y : f.y < target.y;
      var below = S.inverted ? f.y < target.y : f.y > target.y;
      var cl = f.g.classList;
      if (f === target || (above && f.x >= left - EPS && f.x + f.w <= right + EPS)) {
        cl.remove("hide", "parent");
        place(f, S.xpad + (f.x - left) * ratio, f.w * ratio);
      } else if (below && f.x <= left + EPS && f.x + f.w >= right - EPS) {
        cl.remove("hide");
        cl.add("parent");
        place(f, S.xpad, fullWidth);
      } else {
        cl.add("hide");
        cl.remove("parent");
      }
    }
    zoomed = target;
    unzoomBtn.classList.remove("hide");
    updateUrl();
  }

  function unzoom() {
    for (var i = 0; i < frames.length; i++) {
      var f = frames[i];
      f.g.classList.remove("hide", "parent");
      f.rect.setAttribute("x", f.attrs.x);
      f.rect.setAttribute("width", f.attrs.width);
      f.text.setAttribute("x", f.attrs.textX);
      f.text.textContent = f.label;
    }
    zoomed = null;
    unzoomBtn.classList.add("hide");
    updateUrl();
  }

  // ---- search ----
  function clearHighlight() {
    for (var i = 0; i < frames.length; i++) {
      frames[i].rect.setAttribute("fill", frames[i].attrs.fill);
    }
  }

  function search(term) {
    var re;
    try {
      re = new RegExp(term, ignoreCase ? "i" : "");
    } catch (e) {
      resetSearch();
      matchedText.textContent = "Invalid regexp";
      matchedText.classList.add("show");
      return;
    }
    clearHighlight();
    searchTerm = term;
    var spans = [];
    for (var i = 0; i < frames.length; i++) {
      var f = frames[i];
      if (re.test(f.name)) {
        f.rect.setAttribute("fill", S.searchcolor);
        spans.push([f.x, f.x + f.w]);
      }
    }
    // The union of the matched x ranges: nested matches count once.
    spans.sort(function (a, b) { return a[0] - b[0]; });
    var covered = 0, start = null, end = null;
    for (var j = 0; j < spans.length; j++) {
      if (start === null || spans[j][0] > end + EPS / 2) {
        if (start !== null) covered += end - start;
        start = spans[j][0];
        end = spans[j][1];
      } else if (spans[j][1] > end) {
        end = spans[j][1];
      }
    }
    if (start !== null) covered += end - start;
    var pct = rootWidth > 0 ? Math.min(100, 100 * covered / rootWidth) : 0;
    matchedText.textContent = "Matched: " + pct.toFixed(2) + "%";
    matchedText.classList.add("show");
    searchBtn.textContent = "Reset Search";
    searchBtn.classList.add("show");
    updateUrl();
  }

  function resetSearch() {
    clearHighlight();
    searchTerm = null;
    matchedText.textContent = " ";
    matchedText.classList.remove("show");
    searchBtn.textContent = "Search";
    searchBtn.classList.remove("show");
    updateUrl();
  }

  function promptSearch() {
    var term = window.prompt("Enter a search term (regexp allowed, e.g. ^ext4_)" +
                             (ignoreCase ? ", ignoring case" : ""), searchTerm || "");
    if (term) search(term);
  }

  function toggleIgnoreCase() {
    ignoreCase = !ignoreCase;
    icBtn.classList.toggle("show", ignoreCase);
    if (searchTerm !== null) search(searchTerm);
  }

  // ---- wiring ----
  function onFrameOver(evt) {
    var rec = frameOf(evt.target);
    if (rec) details.textContent = S.nametype + " " + rec.title;
  }

  function onFrameOut(evt) {
    if (frameOf(evt.target)) details.textContent = " ";
  }

  function onFrameClick(evt) {
    var rec = frameOf(evt.target);
    if (rec) zoom(rec);
  }

  function onKey(evt) {
    var key = evt.key || "";
    var ctrl = evt.ctrlKey || evt.metaKey;
    if (key === "F3" || (ctrl && key.toLowerCase() === "f")) {
      evt.preventDefault();
      promptSearch();
    } else if (ctrl && key.toLowerCase() === "i") {
      evt.preventDefault();
      toggleIgnoreCase();
    } else if (key === "Escape") {
      if (zoomed) unzoom();
      else if (searchTerm !== null) resetSearch();
    }
  }

  return function init(evt) {
    if (svg) return;
    svg = evt && evt.target && evt.target.nodeName === "svg" ? evt.target : document.documentElement;
    details = document.getElementById("details");
    unzoomBtn = document.getElementById("unzoom");
    searchBtn = document.getElementById("search");
    icBtn = document.getElementById("ignorecase");
    matchedText = document.getElementById("matched");
    framesGroup = document.getElementById("frames");
    var width = svg.viewBox && svg.viewBox.baseVal && svg.viewBox.baseVal.width ||
                parseFloat(svg.getAttribute("width"));
    fullWidth = width - 2 * S.xpad;
    collect();

    framesGroup.addEventListener("mouseover", onFrameOver);
    framesGroup.addEventListener("mouseout", onFrameOut);
    framesGroup.addEventListener("click", onFrameClick);
    unzoomBtn.addEventListener("click", unzoom);
    searchBtn.addEventListener("click", function () {
      if (searchTerm !== null) resetSearch();
      else promptSearch();
    });
    icBtn.addEventListener("click", toggleIgnoreCase);
    window.addEventListener("keydown", onKey);
    restoreFromUrl();
  };
})();
