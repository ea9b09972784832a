// The page of `enlightengan serve`: photos are sent one at a time to POST /api/enhance and shown
// before/after; changing the strength or the exposure fade enhances every photo again. Nothing is
// loaded from elsewhere.
"use strict";

// The fade of "Leave well-exposed photos as they are" (the API's exposure_fade, README "Exposure fade").
const SPARE_FADE = "0.25,0.35";

const page = {
  strength: 1,
  spare: false,
  maxUploadBytes: Infinity,
  items: [],
  busy: false,
};

const $ = (selector) => document.querySelector(selector);

function formatBytes(bytes) {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(0)} MB` : `${Math.round(bytes / 1024)} KB`;
}

function notify(message, isError = false) {
  const notice = $("#notice");
  notice.textContent = message;
  notice.classList.toggle("error", isError);
}

// A failed photo shows an error card with the reason instead of its (possibly broken) pictures.
function setState(item, state, status) {
  item.card.dataset.state = state;
  item.card.querySelector(".status").textContent = state === "error" ? "failed" : status;
  const failure = item.card.querySelector(".failure");
  failure.hidden = state !== "error";
  failure.querySelector(".reason").textContent = state === "error" ? status : "";
}

function resultName(response, file) {
  const header = response.headers.get("Content-Disposition") || "";
  const match = /filename="([^"]+)"/.exec(header);
  return match ? match[1] : `enhanced-${file.name}`;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// What a photo is enhanced with: the strength and whether well-exposed photos are spared.
function settings() {
  return { strength: page.strength, spare: page.spare, key: `${page.strength}|${page.spare}` };
}

async function requestEnhancement(item, wanted) {
  const query = `strength=${wanted.strength}` + (wanted.spare ? `&exposure_fade=${SPARE_FADE}` : "");
  for (;;) {
    const form = new FormData();
    form.append("file", item.file, item.file.name);
    const response = await fetch(`/api/enhance?${query}`, { method: "POST", body: form });
    if (response.status !== 503) return response;
    // The server's queue is full: wait as long as it asks, then try again.
    const seconds = Number(response.headers.get("Retry-After")) || 1;
    setState(item, "working", `server busy, retrying in ${seconds} s`);
    await sleep(seconds * 1000);
  }
}

async function enhance(item, wanted) {
  setState(item, "working", `enhancing at ${wanted.strength.toFixed(2)}…`);
  let response;
  try {
    response = await requestEnhancement(item, wanted);
  } catch (error) {
    item.failedFor = wanted.key;
    setState(item, "error", `the server cannot be reached (${error.message})`);
    return;
  }
  if (!response.ok) {
    let detail = `HTTP ${response.status}`;
    try {
      detail = (await response.json()).detail || detail;
    } catch (_) {
      // not JSON: keep the status line
    }
    item.failedFor = wanted.key;
    setState(item, "error", detail);
    return;
  }
  const blob = await response.blob();
  if (item.afterUrl) URL.revokeObjectURL(item.afterUrl);
  item.afterUrl = URL.createObjectURL(blob);
  const after = item.card.querySelector(".after");
  await new Promise((resolve) => {
    after.onload = after.onerror = resolve;
    after.src = item.afterUrl;
  });
  const link = item.card.querySelector(".download");
  link.href = item.afterUrl;
  link.download = resultName(response, item.file);
  link.setAttribute("aria-disabled", "false");
  // The preview is scaled to the card; the result itself, pixel for pixel, opens in a new tab.
  const full = item.card.querySelector(".full");
  full.href = item.afterUrl;
  full.setAttribute("aria-disabled", "false");
  item.doneFor = wanted.key;
  item.card.dataset.strength = String(wanted.strength);
  item.card.dataset.spare = String(wanted.spare);
  setState(item, "done", `strength ${wanted.strength.toFixed(2)}${wanted.spare ? ", well-exposed spared" : ""}`);
}

// One request at a time from this page: a fair share of the server for everyone using it.
async function pump() {
  if (page.busy) return;
  page.busy = true;
  try {
    for (;;) {
      const wanted = settings();
      const item = page.items.find((i) => i.doneFor !== wanted.key && i.failedFor !== wanted.key);
      if (!item) break;
      await enhance(item, wanted);
    }
  } finally {
    page.busy = false;
  }
}

function removeItem(item) {
  page.items = page.items.filter((i) => i !== item);
  URL.revokeObjectURL(item.beforeUrl);
  if (item.afterUrl) URL.revokeObjectURL(item.afterUrl);
  item.card.remove();
}

function addFile(file) {
  const card = $("#card-template").content.firstElementChild.cloneNode(true);
  const item = { file, card, beforeUrl: URL.createObjectURL(file), afterUrl: null, doneFor: null, failedFor: null };
  card.querySelector(".name").textContent = file.name;
  card.querySelector(".name").title = file.name;
  const before = card.querySelector(".before");
  before.src = item.beforeUrl;
  const compare = card.querySelector(".compare");
  // No broken-image icon: a file the browser cannot show (TIFF, or no image at all) gets a note.
  before.onerror = () => { compare.dataset.preview = "none"; };
  card.querySelector(".divider").addEventListener("input", (event) => {
    compare.style.setProperty("--split", `${event.target.value}%`);
  });
  card.querySelector(".remove").addEventListener("click", () => removeItem(item));
  $("#results").prepend(card);
  if (file.size > page.maxUploadBytes) {
    // Not sent at all: the server would refuse it (413) after the whole upload.
    setState(item, "error", `larger than the server's limit of ${formatBytes(page.maxUploadBytes)}`);
    return;
  }
  setState(item, "queued", "waiting");
  page.items.push(item);
}

// Browsers give HEIC and camera RAW files no image/ type, or none at all: known by their names.
const PHOTO_NAMES = /\.(tiff?|webp|heic|heif|hif|dng|cr2|cr3|nef|arw|raf|orf|rw2)$/i;

function addFiles(files) {
  const images = [...files].filter((f) => f.type.startsWith("image/") || PHOTO_NAMES.test(f.name));
  if (images.length < files.length) notify(`${files.length - images.length} file(s) skipped: not images`, true);
  else notify("");
  images.forEach(addFile);
  pump();
}

async function loadInfo() {
  try {
    const info = await (await fetch("/api/info")).json();
    page.strength = info.strength;
    page.maxUploadBytes = info.max_upload_bytes;
    $("#strength").max = String(info.max_strength);  // the range the server accepts
    $("#strength").value = String(info.strength);
    $("#strength-value").textContent = Number(info.strength).toFixed(2);
    const megapixels = (info.max_pixels / 1e6).toFixed(0);
    $("#limits").textContent = `up to ${formatBytes(info.max_upload_bytes)} and ${megapixels} megapixels each`;
  } catch (error) {
    notify(`cannot read the server's settings (${error.message})`, true);
  }
}

function setUp() {
  const drop = $("#drop");
  const input = $("#file-input");
  input.addEventListener("change", () => {
    addFiles(input.files);
    input.value = "";
  });
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addFiles(event.dataTransfer.files);
  });
  // Dropping a photo anywhere else must not make the browser navigate away from the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());

  const slider = $("#strength");
  slider.addEventListener("input", () => {
    $("#strength-value").textContent = Number(slider.value).toFixed(2);
  });
  slider.addEventListener("change", () => {
    page.strength = Number(slider.value);
    pump();
  });
  const spare = $("#spare");
  spare.addEventListener("change", () => {
    page.spare = spare.checked;
    pump();
  });
  loadInfo();
}

setUp();
