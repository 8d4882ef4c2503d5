// openimagen web page: submits a generation to the streaming route and shows progress, previews and results.
"use strict";
const $ = (id) => document.getElementById(id);
const KEY = "openimagen-api-key";

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = sessionStorage.getItem(KEY);
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function loadModel() {
  const r = await fetch("/v1/models", { headers: headers() });
  if (r.status === 401) {
    $("key-box").open = true;
    $("model-info").textContent = "an API key is needed";
    return;
  }
  const m = (await r.json()).data[0];
  $("model-info").textContent = `${m.id} · ${m.sizes[m.sizes.length - 1]} · hash ${m.model_hash}`;
  $("n").max = m.limits.max_images;
  for (const a of m.adapters || []) {                 // LoRA adapters the service loaded (serve --lora)
    const o = document.createElement("option");
    o.value = o.textContent = a.name;
    $("adapter").appendChild(o);
  }
  $("adapter-box").hidden = $("adapter-scale-box").hidden = !(m.adapters || []).length;
}

function requestBody() {
  const body = { prompt: $("prompt").value, n: Number($("n").value), seed: Number($("seed").value),
                 response_format: "b64_json", preview_every: 4 };
  if ($("negative-prompt").value) body.negative_prompt = $("negative-prompt").value;
  if ($("steps").value) body.steps = Number($("steps").value);
  if ($("guidance").value) body.guidance = Number($("guidance").value);
  if ($("sampler").value) body.sampler = $("sampler").value;
  if ($("adapter").value) {
    body.adapter = $("adapter").value;
    body.adapter_scale = Number($("adapter-scale").value);
  }
  return body;
}

// Parse a text/event-stream body from fetch (EventSource cannot POST or send a key).
async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data) yield { event, data: JSON.parse(data) };
    }
  }
}

function addCard(run, item, summary) {
  const card = document.createElement("figure");
  card.className = "card";
  const src = "data:image/png;base64," + item.b64_json;
  const settings = summary ? summary.settings.map((s, i) => `stage ${i}: ${s.sampler}, ${s.steps} steps, guidance ${s.guidance}`).join("; ") : "";
  card.innerHTML = `<img alt="generated image"><figcaption><div class="prompt"></div>
    <div>seed <code class="seed"></code></div><div class="settings"></div>
    <a class="download">download PNG</a></figcaption>`;
  card.querySelector("img").src = src;
  card.querySelector(".prompt").textContent = item.revised_prompt;
  card.querySelector(".seed").textContent = item.seed;
  card.querySelector(".settings").textContent = settings;
  const a = card.querySelector("a");
  a.href = src;
  a.download = `openimagen-${item.seed}.png`;
  run.append(card);
  return card;
}

async function generate(ev) {
  ev.preventDefault();
  const key = $("api-key").value.trim();
  if (key) sessionStorage.setItem(KEY, key);
  const body = requestBody();
  $("generate").disabled = true;
  $("progress").hidden = false;
  $("progress").value = 0;
  setStatus("queued…");
  const cards = [];
  const run = document.createElement("div");       // this call's images, newest call first, in seed order
  run.className = "run";
  $("gallery").prepend(run);
  try {
    const r = await fetch("/v1/images/generations/stream", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    if (!r.ok) {
      const err = await r.json().catch(() => ({ error: { message: r.statusText } }));
      if (r.status === 401) $("key-box").open = true;
      throw new Error(`${r.status}: ${err.error.message}`);
    }
    for await (const { event, data } of events(r)) {
      if (event === "progress") {
        $("progress").value = (data.stage + data.step / data.steps) / data.stages;
        setStatus(`stage ${data.stage + 1}/${data.stages}, step ${data.step}/${data.steps}`);
        if (data.preview) {
          $("preview").replaceChildren(...data.preview.map((b) => Object.assign(new Image(), { src: "data:image/png;base64," + b, alt: "preview" })));
        }
      } else if (event === "image") {
        cards.push([data, addCard(run, data, null)]);
      } else if (event === "done") {
        for (const [item, card] of cards) {
          card.querySelector(".settings").textContent = data.openimagen.settings
            .map((s, i) => `stage ${i}: ${s.sampler}, ${s.steps} steps, guidance ${s.guidance}`).join("; ");
        }
        setStatus(`done: ${cards.length} image(s) in ${data.openimagen.timings.total.toFixed(1)} s`);
        $("progress").value = 1;
      } else if (event === "error") {
        throw new Error(`${data.status}: ${data.message}`);
      }
    }
  } catch (e) {
    setStatus(e.message, true);
  } finally {
    $("generate").disabled = false;
    $("preview").replaceChildren();
  }
  loadModel();
}

// POST /v1/images/edits: a multipart form with the uploaded image (and mask) plus the settings above.
async function edit(ev) {
  ev.preventDefault();
  const body = requestBody(), form = new FormData();
  form.append("image", $("edit-image").files[0]);
  if ($("edit-mask").files.length) form.append("mask", $("edit-mask").files[0]);
  if ($("edit-mode").value) form.append("mode", $("edit-mode").value);
  form.append("strength", $("edit-strength").value);
  if ($("edit-mode").value === "restore") form.append("kind", $("edit-kind").value);
  for (const k of ["prompt", "n", "seed", "steps", "guidance", "sampler", "adapter", "adapter_scale"]) {
    if (body[k] !== undefined) form.append(k, body[k]);
  }
  const h = headers();
  delete h["Content-Type"];                          // the browser sets the multipart boundary
  $("edit").disabled = true;
  setStatus("editing…");
  const run = document.createElement("div");
  run.className = "run";
  $("gallery").prepend(run);
  try {
    const r = await fetch("/v1/images/edits", { method: "POST", headers: h, body: form });
    const data = await r.json().catch(() => ({ error: { message: r.statusText } }));
    if (!r.ok) throw new Error(`${r.status}: ${data.error.message}`);
    for (const item of data.data) addCard(run, item, data.openimagen);
    setStatus(`done: ${data.openimagen.edit.mode}, ${data.data.length} image(s) in ${data.openimagen.timings.total.toFixed(1)} s`);
  } catch (e) {
    setStatus(e.message, true);
  } finally {
    $("edit").disabled = false;
  }
}

$("api-key").value = sessionStorage.getItem(KEY) || "";
$("generate-form").addEventListener("submit", generate);
$("edit-form").addEventListener("submit", edit);
loadModel();
