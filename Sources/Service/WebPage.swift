import HTTP

/// The web page at `GET /` and its script at `GET /app.js`: plain HTML, CSS and JavaScript kept in the
/// binary, no build step and nothing fetched from elsewhere. The script lives in its own file so that the
/// Content-Security-Policy can forbid inline scripts: metadata shown on the page is user content.
///
/// URL parameters open a view on load, so a link (or a headless browser in a test) lands on a result:
/// `/?similar=ID&k=5&max_distance=8&meta.label=shoe`, `/?view=list&after=100&limit=20`,
/// `/?view=duplicates&max_distance=2`, `/?view=admin`.
enum WebPage {
    /// Headers every page response carries: no inline script, nothing from other origins, no framing.
    static let securityHeaders: [(String, String)] = [
        ("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            + "img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        // The page changes only with the binary; a short lifetime keeps an upgrade visible.
        ("Cache-Control", "no-cache"),
    ]

    static func htmlResponse() -> HTTPResponse {
        HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", "text/html; charset=utf-8")] + securityHeaders), body: Array(html.utf8))
    }

    static func scriptResponse() -> HTTPResponse {
        HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", "text/javascript; charset=utf-8")] + securityHeaders),
                     body: Array(script.utf8))
    }

    static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>dsch — image similarity search</title>
    <style>
      :root { --accent: #2458b3; --muted: #667; --line: #dde; font-family: system-ui, sans-serif; }
      body { margin: 0; color: #222; background: #fafafc; }
      header { display: flex; align-items: center; gap: 1.5rem; padding: .6rem 1.2rem; background: #fff; border-bottom: 1px solid var(--line); }
      header h1 { font-size: 1.2rem; margin: 0; }
      nav a { margin-right: 1rem; color: var(--accent); text-decoration: none; }
      nav a.current { font-weight: 600; text-decoration: underline; }
      #status { margin-left: auto; color: var(--muted); font-size: .9rem; }
      #status.error { color: #b00020; }
      main { padding: 1rem 1.2rem; }
      form.controls { display: flex; flex-wrap: wrap; gap: 1rem; align-items: end; margin-bottom: 1rem; }
      label { display: flex; flex-direction: column; font-size: .85rem; color: var(--muted); gap: .2rem; }
      input[type=number] { width: 6rem; }
      #drop { border: 2px dashed #aab; border-radius: 8px; padding: 1rem 1.5rem; text-align: center; background: #fff; }
      #drop.over { border-color: var(--accent); background: #eef3ff; }
      #query { display: flex; gap: .8rem; align-items: center; min-height: 2rem; margin: .5rem 0 1rem; }
      #query img { max-height: 96px; border-radius: 4px; }
      .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: .8rem; }
      figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .4rem; cursor: pointer; }
      figure:hover { border-color: var(--accent); }
      figure img { display: block; width: 100%; height: 128px; object-fit: contain; background: #f0f0f4; }
      figcaption { font-size: .8rem; margin-top: .3rem; overflow-wrap: anywhere; }
      figcaption .distance { font-weight: 600; color: var(--accent); }
      figcaption .meta { color: var(--muted); font-family: ui-monospace, monospace; font-size: .75rem; }
      .pager { display: flex; gap: 1rem; align-items: center; margin-bottom: 1rem; }
      .group { margin-bottom: 1.2rem; }
      .group h3 { font-size: .95rem; margin: .2rem 0 .5rem; }
      table { border-collapse: collapse; margin-bottom: 1rem; background: #fff; }
      th, td { border: 1px solid var(--line); padding: .3rem .6rem; font-size: .85rem; text-align: left; }
      progress { width: 8rem; }
      .empty { color: var(--muted); }
    </style>
    </head>
    <body>
    <header>
      <h1>dsch</h1>
      <nav>
        <a href="/?view=search" data-view="search">Search</a>
        <a href="/?view=list" data-view="list">Browse</a>
        <a href="/?view=duplicates" data-view="duplicates">Duplicates</a>
        <a href="/?view=admin" data-view="admin">Admin</a>
      </nav>
      <span id="status" role="status"></span>
    </header>
    <main>
      <section id="search-view">
        <form class="controls" id="search-form">
          <div id="drop">Drop a JPEG or PNG here, or <input type="file" id="file" accept="image/jpeg,image/png"></div>
          <label>k (results) <input type="number" id="k" min="1" max="1000" value="10"></label>
          <label>max distance <input type="number" id="max-distance" min="0" placeholder="any"></label>
          <label>metadata filter <input type="text" id="filter" placeholder="label=shoe, size=3"></label>
        </form>
        <div id="query"></div>
        <div id="results" class="grid"></div>
      </section>
      <section id="list-view" hidden>
        <form class="controls" id="list-form">
          <label>per page <input type="number" id="limit" min="1" max="1000" value="50"></label>
          <label>metadata filter <input type="text" id="list-filter" placeholder="label=shoe"></label>
          <button type="submit">Show</button>
        </form>
        <div class="pager"><button id="previous" type="button">Previous</button><span id="page-info"></span><button id="next" type="button">Next</button></div>
        <div id="images" class="grid"></div>
      </section>
      <section id="duplicates-view" hidden>
        <form class="controls" id="duplicates-form">
          <label>max distance <input type="number" id="duplicate-distance" min="0" value="2"></label>
          <button type="submit">Find groups</button>
        </form>
        <p id="duplicates-info"></p>
        <div id="groups"></div>
      </section>
      <section id="admin-view" hidden>
        <form class="controls" id="token-form">
          <label>admin token <input type="password" id="token" autocomplete="off"></label>
          <button type="submit">Connect</button>
          <span class="empty">The token stays in this page's memory; reloading forgets it.</span>
        </form>
        <div id="admin-panel" hidden>
          <h2>Models</h2>
          <p id="active-version"></p>
          <table id="models"></table>
          <h2>Retrain</h2>
          <form class="controls" id="retrain-form">
            <label>kind <select id="kind"><option value="">configured</option><option value="dsch">dsch</option><option value="itq">itq</option></select></label>
            <label>epochs <input type="number" id="epochs" min="1" placeholder="configured"></label>
            <button type="submit">Start retrain</button>
          </form>
          <h2>Jobs</h2>
          <table id="jobs"></table>
        </div>
      </section>
    </main>
    <script src="/app.js"></script>
    </body>
    </html>
    """#

    static let script = #"""
    "use strict";
    // dsch web page: search, browse, duplicates and admin over the JSON API of the same server.
    const $ = (id) => document.getElementById(id);
    const views = ["search", "list", "duplicates", "admin"];
    // The admin token lives only in this variable: never in storage, cookies or the URL.
    let adminToken = null;
    const listCursors = [];
    let listNext = null;
    const pollers = new Map();

    function setStatus(text, isError) {
      $("status").textContent = text;
      $("status").className = isError ? "error" : "";
    }

    function show(view) {
      for (const name of views) $(name + "-view").hidden = name !== view;
      for (const link of document.querySelectorAll("nav a")) link.classList.toggle("current", link.dataset.view === view);
    }

    // Keeps the address bar equal to what is shown, so a view can be bookmarked or shared.
    function remember(parameters) {
      history.replaceState(null, "", "/?" + parameters.toString());
    }

    async function api(method, path, options = {}) {
      const headers = Object.assign({}, options.headers || {});
      if (options.admin) headers["Authorization"] = "Bearer " + adminToken;
      const response = await fetch(path, { method, headers, body: options.body });
      const text = await response.text();
      let body = null;
      try { body = text ? JSON.parse(text) : null; } catch (error) { body = null; }
      if (!response.ok) {
        const message = body && body.error ? body.error.message : response.status + " " + response.statusText;
        throw new Error(message);
      }
      return body;
    }

    // "label=shoe, size=3" as meta.label=shoe&meta.size=3 on `parameters`.
    function addFilters(parameters, text) {
      for (const pair of text.split(",")) {
        const at = pair.indexOf("=");
        if (at <= 0) continue;
        parameters.set("meta." + pair.slice(0, at).trim(), pair.slice(at + 1).trim());
      }
    }

    function filterText(parameters) {
      const pairs = [];
      for (const [name, value] of parameters) if (name.startsWith("meta.")) pairs.push(name.slice(5) + "=" + value);
      return pairs.join(", ");
    }

    function searchParameters() {
      const parameters = new URLSearchParams();
      if ($("k").value) parameters.set("k", $("k").value);
      if ($("max-distance").value) parameters.set("max_distance", $("max-distance").value);
      addFilters(parameters, $("filter").value);
      return parameters;
    }

    // One image as a card: thumbnail, id, distance when given, size and metadata; a click finds similar ones.
    function card(image) {
      const figure = document.createElement("figure");
      figure.dataset.id = String(image.id);
      const picture = document.createElement("img");
      picture.src = "/v1/images/" + image.id + "/thumbnail";
      picture.alt = "image " + image.id;
      picture.loading = "lazy";
      figure.append(picture);
      const caption = document.createElement("figcaption");
      const title = document.createElement("div");
      title.textContent = "#" + image.id + " · " + image.width + "×" + image.height;
      if (image.distance !== undefined) {
        const distance = document.createElement("span");
        distance.className = "distance";
        distance.textContent = " · distance " + image.distance;
        title.append(distance);
      }
      caption.append(title);
      if (image.meta !== undefined) {
        const meta = document.createElement("div");
        meta.className = "meta";
        meta.textContent = JSON.stringify(image.meta);
        caption.append(meta);
      }
      figure.append(caption);
      figure.title = "Find images similar to #" + image.id;
      figure.addEventListener("click", () => similar(image.id));
      return figure;
    }

    function fill(container, images, emptyText) {
      container.replaceChildren(...images.map(card));
      if (images.length === 0) {
        const empty = document.createElement("p");
        empty.className = "empty";
        empty.textContent = emptyText;
        container.append(empty);
      }
    }

    function showQuery(source, text) {
      const picture = document.createElement("img");
      picture.src = source;
      picture.alt = "query";
      const label = document.createElement("span");
      label.textContent = text;
      $("query").replaceChildren(picture, label);
    }

    async function similar(id) {
      show("search");
      const parameters = searchParameters();
      setStatus("searching…");
      try {
        const answer = await api("GET", "/v1/images/" + id + "/similar?" + parameters.toString());
        showQuery("/v1/images/" + id + "/thumbnail", "Images nearest to #" + id + " (model version " + answer.model_version + ")");
        fill($("results"), answer.results, "No stored image is within reach of this one.");
        parameters.set("similar", String(id));
        remember(parameters);
        setStatus(answer.results.length + " results");
      } catch (error) {
        setStatus(error.message, true);
      }
    }

    async function searchFile(file) {
      show("search");
      setStatus("searching…");
      try {
        const answer = await api("POST", "/v1/search?" + searchParameters().toString(),
                                 { body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
        showQuery(URL.createObjectURL(file), "Images nearest to " + file.name + " (code " + answer.query.code + ")");
        fill($("results"), answer.results, "No stored image is within reach of this one.");
        setStatus(answer.results.length + " results");
      } catch (error) {
        setStatus(error.message, true);
      }
    }

    async function listPage(after) {
      show("list");
      const parameters = new URLSearchParams({ view: "list", limit: $("limit").value || "50" });
      if (after > 0) parameters.set("after", String(after));
      addFilters(parameters, $("list-filter").value);
      setStatus("loading…");
      try {
        const query = new URLSearchParams(parameters);
        query.delete("view");
        const page = await api("GET", "/v1/images?" + query.toString());
        fill($("images"), page.images, "No stored images on this page.");
        listNext = page.next_after;
        $("next").disabled = listNext === null;
        $("previous").disabled = listCursors.length === 0;
        const ids = page.images.map((image) => image.id);
        $("page-info").textContent = ids.length ? "#" + ids[0] + " – #" + ids[ids.length - 1] : "";
        remember(parameters);
        setStatus(page.images.length + " images");
      } catch (error) {
        setStatus(error.message, true);
      }
    }

    async function duplicates() {
      show("duplicates");
      const parameters = new URLSearchParams({ view: "duplicates", max_distance: $("duplicate-distance").value || "0" });
      setStatus("grouping…");
      try {
        const answer = await api("GET", "/v1/duplicates?max_distance=" + encodeURIComponent(parameters.get("max_distance")) + "&limit=50");
        $("duplicates-info").textContent = answer.total_groups + " groups within distance " + answer.max_distance
          + " (model version " + answer.model_version + ")";
        $("groups").replaceChildren(...answer.groups.map((group) => {
          const section = document.createElement("div");
          section.className = "group";
          const heading = document.createElement("h3");
          heading.textContent = group.size + " images; each card shows its distance to #" + group.first_id;
          const grid = document.createElement("div");
          grid.className = "grid";
          grid.append(...group.images.map(card));
          section.append(heading, grid);
          return section;
        }));
        remember(parameters);
        setStatus(answer.total_groups + " groups");
      } catch (error) {
        setStatus(error.message, true);
      }
    }

    function cell(row, content) {
      const element = document.createElement("td");
      if (content instanceof Node) element.append(content); else element.textContent = content;
      row.append(element);
    }

    function header(table, names) {
      const row = document.createElement("tr");
      for (const name of names) {
        const element = document.createElement("th");
        element.textContent = name;
        row.append(element);
      }
      table.replaceChildren(row);
    }

    async function loadModels() {
      const answer = await api("GET", "/v1/admin/models", { admin: true });
      $("active-version").textContent = "Active version: " + answer.active_version;
      header($("models"), ["version", "kind", "bits", "status", "created", ""]);
      for (const model of answer.models) {
        const row = document.createElement("tr");
        row.dataset.version = String(model.version);
        for (const value of [model.version, model.kind, model.bits, model.status, model.created_at]) cell(row, String(value));
        const button = document.createElement("button");
        button.textContent = model.active ? "active" : "activate";
        button.disabled = model.active || model.status === "building";
        button.addEventListener("click", async () => {
          try {
            await api("POST", "/v1/admin/models/" + model.version + "/activate", { admin: true });
            setStatus("version " + model.version + " is active");
            await loadModels();
          } catch (error) { setStatus(error.message, true); }
        });
        cell(row, button);
        $("models").append(row);
      }
    }

    function jobRow(job) {
      const row = document.createElement("tr");
      row.id = "job-" + job.id;
      row.dataset.job = String(job.id);
      const progress = document.createElement("progress");
      progress.max = 1;
      progress.value = job.progress;
      const percent = document.createElement("span");
      percent.textContent = " " + Math.round(job.progress * 100) + "%";
      const both = document.createElement("span");
      both.append(progress, percent);
      for (const value of [job.id, job.kind, job.status]) cell(row, String(value));
      cell(row, both);
      cell(row, job.message || "");
      cell(row, job.model_version === undefined ? "" : String(job.model_version));
      return row;
    }

    function showJob(job) {
      const existing = $("job-" + job.id);
      const row = jobRow(job);
      if (existing) existing.replaceWith(row); else $("jobs").firstChild.after(row);
      if (job.status === "queued" || job.status === "running") follow(job.id);
    }

    // Polls a running job once a second until it ends, then refreshes the models.
    function follow(id) {
      if (pollers.has(id)) return;
      const timer = setInterval(async () => {
        try {
          const job = await api("GET", "/v1/admin/jobs/" + id, { admin: true });
          const existing = $("job-" + id);
          if (existing) existing.replaceWith(jobRow(job));
          if (job.status === "succeeded" || job.status === "failed") {
            clearInterval(timer);
            pollers.delete(id);
            await loadModels();
          }
        } catch (error) {
          clearInterval(timer);
          pollers.delete(id);
          setStatus(error.message, true);
        }
      }, 1000);
      pollers.set(id, timer);
    }

    async function loadJobs() {
      const answer = await api("GET", "/v1/admin/jobs?limit=20", { admin: true });
      header($("jobs"), ["job", "kind", "status", "progress", "message", "model version"]);
      for (const job of answer.jobs) {
        $("jobs").append(jobRow(job));
        if (job.status === "queued" || job.status === "running") follow(job.id);
      }
    }

    async function connect() {
      adminToken = $("token").value;
      $("token").value = "";
      try {
        await loadModels();
        await loadJobs();
        $("admin-panel").hidden = false;
        setStatus("connected");
      } catch (error) {
        adminToken = null;
        $("admin-panel").hidden = true;
        setStatus(error.message, true);
      }
    }

    async function retrain() {
      const request = {};
      if ($("kind").value) request.kind = $("kind").value;
      if ($("epochs").value) request.epochs = Number($("epochs").value);
      try {
        const job = await api("POST", "/v1/admin/retrain", { admin: true, body: JSON.stringify(request),
                                                             headers: { "Content-Type": "application/json" } });
        showJob(job);
        setStatus("retrain job " + job.id + " started");
      } catch (error) {
        setStatus(error.message, true);
      }
    }

    function wire() {
      const drop = $("drop");
      drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
      drop.addEventListener("dragleave", () => drop.classList.remove("over"));
      drop.addEventListener("drop", (event) => {
        event.preventDefault();
        drop.classList.remove("over");
        if (event.dataTransfer.files.length) searchFile(event.dataTransfer.files[0]);
      });
      $("file").addEventListener("change", () => { if ($("file").files.length) searchFile($("file").files[0]); });
      $("search-form").addEventListener("submit", (event) => event.preventDefault());
      $("list-form").addEventListener("submit", (event) => { event.preventDefault(); listCursors.length = 0; listPage(0); });
      $("next").addEventListener("click", () => {
        const shown = $("images").querySelector("figure");
        listCursors.push(shown ? Number(shown.dataset.id) - 1 : 0);
        listPage(listNext);
      });
      $("previous").addEventListener("click", () => listPage(listCursors.pop() || 0));
      $("duplicates-form").addEventListener("submit", (event) => { event.preventDefault(); duplicates(); });
      $("token-form").addEventListener("submit", (event) => { event.preventDefault(); connect(); });
      $("retrain-form").addEventListener("submit", (event) => { event.preventDefault(); retrain(); });
      for (const link of document.querySelectorAll("nav a")) {
        link.addEventListener("click", (event) => {
          event.preventDefault();
          const view = link.dataset.view;
          if (view === "list") { listCursors.length = 0; listPage(0); }
          else if (view === "duplicates") duplicates();
          else { show(view); remember(new URLSearchParams({ view })); }
        });
      }
    }

    // Opens the view the address asks for: ?similar=ID, ?view=list|duplicates|admin|search.
    function start() {
      wire();
      const parameters = new URLSearchParams(location.search);
      if (parameters.has("k")) $("k").value = parameters.get("k");
      if (parameters.has("max_distance")) {
        $("max-distance").value = parameters.get("max_distance");
        $("duplicate-distance").value = parameters.get("max_distance");
      }
      if (parameters.has("limit")) $("limit").value = parameters.get("limit");
      $("filter").value = filterText(parameters);
      $("list-filter").value = filterText(parameters);
      const view = parameters.get("view");
      if (parameters.has("similar")) similar(Number(parameters.get("similar")));
      else if (view === "list") listPage(Number(parameters.get("after") || "0"));
      else if (view === "duplicates") duplicates();
      else show(views.includes(view) ? view : "search");
    }

    start();
    """#
}
