// The vmimages console: a client of the public API (POST /api/v2/vm with a bearer token), for
// one account at a time. No framework, no build step; every caller-made text goes into the page
// through textContent, never as HTML.
"use strict";

const API = "/api/v2/vm";
const SEED = ""; // no X-ZC-Version: the seed dialect (regions; location filters optional)
const PUBLISHED = "2026-04-01";
const TOKEN_KEY = "vmimages.token"; // sessionStorage: this tab only, gone when it closes
const WAIT_SECONDS = 20; // a long poll of DescribeImageChanges (docs/changes.md)
const KEPT_ANSWERS = 50; // answers kept with their ETag, to send If-None-Match

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(code, message, requestId, status) {
    super(message);
    this.code = code;
    this.requestId = requestId;
    this.status = status;
  }
}

// The API's rule for an image name (actions/lifecycle.py), checked as the user types.
const IMAGE_NAME = /^[A-Za-z0-9\u3400-\u4dbf\u4e00-\u9fff_-]{2,24}$/;
const SORTED_AT_MOST = 10000; // images fetched to sort a list by another column than its own
const DEFAULT_SORT = { key: "created", dir: "desc" }; // the API's own order
const FILTER_NAMES = ["regionId", "category", "osType", "imageType", "imageStatus", "imageName",
  "pageSize"];

const state = {
  page: 1, total: 0, selected: null,
  sort: { ...DEFAULT_SORT },
  zoneOf: new Map(), // region id -> zone id (the CLI's names), from DescribeRegions and Zones
  wantedRegion: "", // a region the URL names, chosen once the regions are listed
  session: 0, // counts sign-ins and sign-outs: a watch of an earlier one stops
  cursor: null, // where the watch of the feed goes on from
  watching: false,
  kept: new Map(), // "action version params" -> {etag, answer}
};

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

// An action of the API. With `conditional`, the answer is kept with its ETag and the same call
// sends If-None-Match: an unchanged answer comes back as 304, with no body, and is reused.
async function call(action, params = {}, version = SEED, conditional = false) {
  const headers = {
    "Content-Type": "application/json",
    "X-ZC-Action": action,
    Authorization: "Bearer " + token(),
  };
  if (version) headers["X-ZC-Version"] = version;
  const key = conditional ? action + " " + version + " " + JSON.stringify(params) : null;
  const kept = key === null ? undefined : state.kept.get(key);
  if (kept) headers["If-None-Match"] = kept.etag;
  let response;
  try {
    response = await fetch(API, {
      method: "POST", headers, body: JSON.stringify(params), cache: "no-store",
      credentials: "omit",
    });
  } catch (err) {
    throw new ApiError("NETWORK_ERROR", "The server could not be reached.", "-", 0);
  }
  const requestId = response.headers.get("x-zc-request-id") || "-";
  if (response.status === 304 && kept) return kept.answer;
  let doc;
  try {
    doc = await response.json();
  } catch (err) {
    throw new ApiError("BAD_RESPONSE", "The server's answer is not JSON.", requestId,
      response.status);
  }
  if (!response.ok || doc.code) {
    throw new ApiError(doc.code || "HTTP_" + response.status, doc.message || "", doc.requestId
      || requestId, response.status);
  }
  const etag = response.headers.get("etag");
  if (key !== null && etag) {
    if (state.kept.size >= KEPT_ANSWERS) state.kept.clear();
    state.kept.set(key, { etag, answer: doc.response });
  }
  return doc.response;
}

// A message is put at the top of the part of the page the user acted in (`near`), brought into
// view; an error also takes the focus, so a screen reader reads it and the keyboard is there.
function placeNear(element, near) {
  const where = near ? $(near) : null;
  if (where) where.prepend(element); else document.querySelector("main").prepend(element);
  element.scrollIntoView({ block: "nearest" });
}

function showError(err, near) {
  if (!(err instanceof ApiError)) {
    err = new ApiError("CONSOLE_ERROR", String(err && err.message || err), "-", 0);
  }
  $("error-code").textContent = err.code;
  $("error-message").textContent = err.message;
  $("error-request-id").textContent = err.requestId;
  $("notice").hidden = true;
  $("error").hidden = false;
  placeNear($("error"), near);
  $("error").focus();
}

function clearError() {
  $("error").hidden = true;
}

// What a change did, said where the user acted (role="status": read out, focus left alone).
function notify(text, near) {
  clearError();
  $("notice").textContent = text;
  $("notice").hidden = false;
  placeNear($("notice"), near);
}

// Guards an action of the user: its API error is shown, with its code and requestId, near the
// part of the page (`near`, an element id) the action came from.
function guarded(work, near) {
  return async (event) => {
    if (event) event.preventDefault();
    try {
      await work(event);
    } catch (err) {
      showError(err, near);
    }
  };
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function idCell(row, imageId) {
  const td = document.createElement("td");
  td.className = "id";
  const code = document.createElement("code");
  code.textContent = imageId;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "copy";
  button.textContent = "Copy";
  button.setAttribute("aria-label", "Copy image id " + imageId);
  button.addEventListener("click", guarded(async () => {
    await copyText(imageId, code);
    button.textContent = "Copied";
    notify("Copied " + imageId + " to the clipboard.", null);
    setTimeout(() => { button.textContent = "Copy"; }, 2000);
  }));
  td.append(code, " ", button);
  row.appendChild(td);
}

// The exact text on the clipboard (no trailing newline); where the Clipboard API is not offered
// (a page not served over https or from localhost), the selection is copied instead.
async function copyText(text, element) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
  const done = document.execCommand("copy");
  selection.removeAllRanges();
  if (!done) throw new ApiError("COPY_FAILED", "The browser did not copy; select the id.", "-", 0);
}

function badge(row, status) {
  const td = document.createElement("td");
  const span = document.createElement("span");
  span.className = "badge status-" + status;
  span.textContent = status;
  td.appendChild(span);
  row.appendChild(td);
}

function zoneCell(row, regionId) {
  const td = cell(row, state.zoneOf.get(regionId) || regionId);
  td.title = "Region " + regionId;
}

function nameButton(image) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "link";
  button.textContent = image.imageName;
  button.setAttribute("aria-label", "Details of " + image.imageName + " (" + image.imageId + ")");
  button.addEventListener("click", guarded(() => openDetails(image.imageId), "images-section"));
  return button;
}

function filters() {
  const form = new FormData($("filters"));
  const params = {};
  for (const [name, value] of form.entries()) {
    if (value !== "") params[name] = name === "pageSize" ? Number(value) : value;
  }
  return params;
}

// The view in the page's address: filters, page and order, so a reload or a shared link shows
// the same list (the token is never in it).
function writeAddress() {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(filters())) {
    if (!(name === "pageSize" && value === 20)) query.set(name, String(value));
  }
  if (state.page > 1) query.set("page", String(state.page));
  if (state.sort.key !== DEFAULT_SORT.key || state.sort.dir !== DEFAULT_SORT.dir) {
    query.set("sort", state.sort.key + "." + state.sort.dir);
  }
  const text = query.toString();
  history.replaceState(null, "", location.pathname + (text ? "?" + text : ""));
}

function readAddress() {
  const query = new URLSearchParams(location.search);
  for (const name of FILTER_NAMES) {
    const field = $("filters").elements.namedItem(name);
    const value = query.get(name);
    if (!field || value === null) continue;
    if (name === "regionId") state.wantedRegion = value; // its options come after sign-in
    else if (field.tagName === "SELECT") {
      if ([...field.options].some((o) => o.value === value)) field.value = value;
    } else field.value = value.slice(0, 64);
  }
  const page = Number(query.get("page"));
  state.page = Number.isInteger(page) && page > 0 ? page : 1;
  const [key, dir] = (query.get("sort") || "").split(".");
  if (["name", "status", "size", "created"].includes(key) && ["asc", "desc"].includes(dir)) {
    state.sort = { key, dir };
  }
}

const SORT_KEYS = {
  name: (i) => i.imageName.toLowerCase(),
  status: (i) => i.imageStatus,
  size: (i) => Number(i.imageSize),
  created: (i) => i.createTime,
};

// A page of the list: the API's own (newest first), or, sorted by another column, a page of
// every match (up to SORTED_AT_MOST) sorted here.
async function imagesPage(params) {
  const { key, dir } = state.sort;
  if (key === DEFAULT_SORT.key && dir === DEFAULT_SORT.dir) {
    return call("DescribeImages", { ...params, pageNum: state.page }, SEED, true);
  }
  const all = [];
  let total = 0;
  for (let number = 1; all.length < SORTED_AT_MOST; number += 1) {
    const answer = await call("DescribeImages", { ...params, pageSize: 1000, pageNum: number },
      SEED, true);
    total = answer.totalCount;
    all.push(...answer.images);
    if (answer.images.length < 1000 || all.length >= total) break;
  }
  const value = SORT_KEYS[key];
  const sign = dir === "asc" ? 1 : -1;
  all.sort((a, b) => {
    const x = value(a), y = value(b);
    if (x < y) return -sign;
    if (x > y) return sign;
    return a.imageId < b.imageId ? -1 : a.imageId > b.imageId ? 1 : 0;
  });
  const start = (state.page - 1) * params.pageSize;
  return { totalCount: total, images: all.slice(start, start + params.pageSize) };
}

function showSort() {
  for (const button of document.querySelectorAll("#images .sort")) {
    const th = button.parentElement;
    const on = button.dataset.sort === state.sort.key;
    th.setAttribute("aria-sort", on ? (state.sort.dir === "asc" ? "ascending" : "descending")
      : "none");
  }
}

async function loadImages() {
  const params = filters();
  params.pageSize = params.pageSize || 20;
  const answer = await imagesPage(params);
  const body = $("images").tBodies[0];
  body.replaceChildren();
  for (const image of answer.images) {
    const row = document.createElement("tr");
    idCell(row, image.imageId);
    const name = document.createElement("td");
    name.appendChild(nameButton(image));
    row.appendChild(name);
    cell(row, image.imageType === "CUSTOM_IMAGE" ? "Custom" : "Public");
    badge(row, image.imageStatus);
    zoneCell(row, image.regionId);
    cell(row, image.category + " " + image.imageVersion);
    cell(row, image.imageSize + " GB", "number");
    cell(row, image.createTime);
    body.appendChild(row);
  }
  if (answer.images.length === 0) {
    const row = document.createElement("tr");
    const td = cell(row, answer.totalCount === 0
      ? "No image matches these filters. "
      : "No images on this page. ");
    td.colSpan = 8;
    const clear = document.createElement("button");
    clear.type = "button";
    clear.className = "link";
    clear.textContent = answer.totalCount === 0 ? "Clear the filters" : "Go to the first page";
    clear.addEventListener("click", guarded(async () => {
      if (answer.totalCount === 0) {
        $("filters").reset();
        state.wantedRegion = "";
      }
      state.page = 1;
      await loadImages();
    }, "images-section"));
    td.appendChild(clear);
    body.appendChild(row);
  }
  state.total = answer.totalCount;
  const pages = Math.max(1, Math.ceil(answer.totalCount / params.pageSize));
  $("total").textContent = answer.totalCount === 1 ? "1 image" : answer.totalCount + " images";
  $("page").textContent = "Page " + state.page + " of " + pages;
  $("prev").disabled = state.page <= 1;
  $("next").disabled = state.page >= pages;
  showSort();
  writeAddress();
}

async function loadCustom() {
  const answer = await call("DescribeImages", { imageType: "CUSTOM_IMAGE", pageSize: 1000 },
    SEED, true);
  const body = $("custom").tBodies[0];
  body.replaceChildren();
  let building = 0;
  for (const image of answer.images) {
    const row = document.createElement("tr");
    idCell(row, image.imageId);
    const name = document.createElement("td");
    name.appendChild(nameButton(image));
    row.appendChild(name);
    badge(row, image.imageStatus);
    zoneCell(row, image.regionId);
    cell(row, image.createTime);
    body.appendChild(row);
    if (image.imageStatus === "CREATING") building += 1;
  }
  if (answer.images.length === 0) {
    const row = document.createElement("tr");
    cell(row, "No custom images yet: make one from an instance with the form above.").colSpan = 5;
    body.appendChild(row);
  }
  $("building").textContent = building === 0 ? ""
    : building + (building === 1 ? " image is" : " images are") + " being built; this refreshes"
      + " until the build ends.";
  return building;
}

async function loadQuota() {
  const answer = await call("DescribeImageQuota", {});
  const body = $("quota").tBodies[0];
  body.replaceChildren();
  for (const quota of answer.images) {
    const row = document.createElement("tr");
    zoneCell(row, quota.regionId);
    cell(row, quota.count);
    cell(row, quota.maxCount);
    body.appendChild(row);
  }
}

async function loadAll() {
  const [, building] = await Promise.all([loadImages(), loadCustom(), loadQuota()]);
  if (state.selected) await showDetails(state.selected, false);
  return building;
}

// The lists again; while images are being built, the feed is watched and the lists read
// again when it says something changed (the ETags make the unchanged ones cheap).
async function refresh() {
  // Where the feed stands before the lists are read: no change after it is missed, and none
  // before it (the user's own, just made) makes the lists be read once more.
  state.cursor = (await call("DescribeImageChanges", { fromNow: true })).nextCursor;
  const building = await loadAll();
  if (building > 0 && !state.watching) watch();
}

async function watch() {
  const session = state.session;
  state.watching = true;
  try {
    let building = 1;
    while (building > 0 && session === state.session) {
      const page = await call("DescribeImageChanges",
        { cursor: state.cursor, waitSeconds: WAIT_SECONDS });
      if (session !== state.session) return;
      state.cursor = page.nextCursor;
      if (page.changes.length > 0) building = await loadAll();
    }
  } catch (err) {
    if (session === state.session) showError(err); // the next action of the user goes on
  } finally {
    if (session === state.session) state.watching = false;
  }
}

const DETAIL_FIELDS = [
  ["imageId", "Image id"], ["imageName", "Name"], ["imageType", "Type"],
  ["imageStatus", "Status"], ["zoneId", "Zone"], ["regionId", "Region"], ["category", "Category"],
  ["osType", "OS type"], ["imageVersion", "Version"], ["imageSize", "Size (GB)"],
  ["imageDescription", "Description"], ["createTime", "Created"],
];

async function showDetails(imageId, focus) {
  // The published dialect's DescribeImage (the zone), beside the seed list's fields (the region).
  const [one, listed] = await Promise.all([
    call("DescribeImage", { imageId }, PUBLISHED).catch((err) => {
      if (err.code === "INVALID_IMAGE_NOT_FOUND") return null;
      throw err;
    }),
    call("DescribeImages", { imageIds: [imageId] }),
  ]);
  if (one === null || listed.images.length === 0) {
    closeDetails();
    return;
  }
  const image = { ...listed.images[0], ...one };
  image.zoneId = state.zoneOf.get(image.regionId) || null;
  state.selected = imageId;
  $("details-id").textContent = image.imageName;
  const list = $("details-fields");
  list.replaceChildren();
  for (const [key, label] of DETAIL_FIELDS) {
    const term = document.createElement("dt");
    term.textContent = label;
    const value = document.createElement("dd");
    value.textContent = image[key] === null || image[key] === undefined ? "—" : String(image[key]);
    if (key === "imageStatus") value.className = "status-" + image[key];
    list.append(term, value);
  }
  // Only what this image allows is offered: a public image is the operator's, not the account's.
  const custom = image.imageType === "CUSTOM_IMAGE";
  const building = custom && image.imageStatus === "CREATING";
  $("rename-form").hidden = !custom;
  $("delete").hidden = !custom;
  $("delete").disabled = building;
  $("delete-reason").hidden = !building;
  $("delete-reason").textContent = building
    ? "An image being built cannot be deleted; it can be once its build ends." : "";
  if (focus) $("rename-name").value = image.imageName;
  $("details").hidden = false;
  if (focus) $("details").focus();
}

async function openDetails(imageId) {
  clearError();
  await showDetails(imageId, true);
}

function closeDetails() {
  state.selected = null;
  $("details").hidden = true;
}

async function signIn(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
  let regions;
  try {
    regions = await call("DescribeRegions", {});
  } catch (err) {
    if (err.status === 401) sessionStorage.removeItem(TOKEN_KEY);
    throw err;
  }
  // Zones are what the CLI and the published dialect name; a region and its zone share their
  // location's name (a name two locations share is left as the region id).
  const zones = (await call("DescribeZones", {}, PUBLISHED)).zoneSet;
  const byName = new Map();
  for (const zone of zones) byName.set(zone.zoneName, byName.has(zone.zoneName) ? null : zone.zoneId);
  state.zoneOf = new Map();
  const select = $("f-region");
  select.replaceChildren(new Option("All regions", ""));
  for (const region of regions.regions) {
    const zone = byName.get(region.regionName);
    if (zone) state.zoneOf.set(region.regionId, zone);
    select.appendChild(new Option(region.regionName + " (" + (zone || region.regionId) + ")",
      region.regionId));
  }
  if ([...select.options].some((o) => o.value === state.wantedRegion)) {
    select.value = state.wantedRegion;
  }
  $("sign-in").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = false;
  $("token").value = "";
  clearError();
  await refresh();
  $("images-title").focus(); // the list, where the work starts
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.session += 1; // the watch of this sign-in stops
  state.cursor = null;
  state.watching = false;
  state.kept.clear();
  closeDetails();
  $("app").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  for (const id of ["images", "custom", "quota"]) $(id).tBodies[0].replaceChildren();
  clearError();
  $("notice").hidden = true;
  $("token").focus();
}

function confirmDelete(image) {
  return new Promise((resolve) => {
    const dialog = $("confirm");
    $("confirm-id").textContent = image.id;
    $("confirm-name").textContent = image.name;
    dialog.returnValue = "";
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "delete"),
      { once: true });
    dialog.showModal();
  });
}

// Name rules as the user types: the API's own, said under the field and kept by the form.
function checkName(input) {
  const value = input.value.trim();
  const rule = $(input.getAttribute("aria-describedby"));
  const ok = value === "" || IMAGE_NAME.test(value);
  input.setCustomValidity(ok ? "" : "2 to 24 letters, digits, Chinese characters, - or _");
  input.setAttribute("aria-invalid", ok ? "false" : "true");
  rule.classList.toggle("bad", !ok);
}

document.addEventListener("DOMContentLoaded", () => {
  readAddress();
  $("sign-in-form").addEventListener("submit",
    guarded(() => signIn($("token").value.trim()), "sign-in"));
  $("sign-out").addEventListener("click", signOut);
  $("error-close").addEventListener("click", clearError);
  for (const input of document.querySelectorAll("[data-name-rule]")) {
    input.addEventListener("input", () => checkName(input));
  }
  $("filters").addEventListener("submit", guarded(async () => {
    state.page = 1;
    await loadImages();
  }, "images-section"));
  $("filters").addEventListener("change", guarded(async () => {
    state.page = 1;
    await loadImages();
  }, "images-section"));
  for (const button of document.querySelectorAll("#images .sort")) {
    button.addEventListener("click", guarded(async () => {
      const key = button.dataset.sort;
      const first = key === "created" || key === "size" ? "desc" : "asc";
      state.sort = state.sort.key === key
        ? { key, dir: state.sort.dir === "asc" ? "desc" : "asc" } : { key, dir: first };
      state.page = 1;
      await loadImages();
    }, "images-section"));
  }
  $("prev").addEventListener("click", guarded(async () => {
    state.page = Math.max(1, state.page - 1);
    await loadImages();
  }, "images-section"));
  $("next").addEventListener("click", guarded(async () => {
    state.page += 1;
    await loadImages();
  }, "images-section"));
  $("details-close").addEventListener("click", closeDetails);
  $("rename-form").addEventListener("submit", guarded(async () => {
    const name = $("rename-name").value.trim();
    await call("ModifyImagesAttributes", { imageIds: [state.selected], imageName: name });
    const id = state.selected;
    await refresh();
    notify("Renamed " + id + " to " + name + ".", "details");
  }, "details"));
  $("delete").addEventListener("click", guarded(async () => {
    const id = state.selected;
    const name = $("details-id").textContent;
    if (!(await confirmDelete({ id, name }))) return;
    await call("DeleteImages", { imageIds: [id] });
    closeDetails();
    await refresh();
    notify("Deleted " + id + " (" + name + ").", "custom-section");
  }, "details"));
  $("create-form").addEventListener("submit", guarded(async () => {
    const form = new FormData($("create-form"));
    const params = { instanceId: form.get("instanceId").trim(), imageName: form.get("imageName").trim() };
    const description = form.get("imageDescription").trim();
    if (description) params.imageDescription = description;
    const created = await call("CreateImage", params);
    $("create-form").reset();
    await refresh();
    await openDetails(created.imageId);
    notify("Creating " + created.imageId + " (" + params.imageName + "): it is being built.",
      "details");
  }, "custom-section"));
  if (token()) guarded(() => signIn(token()), "sign-in")();
});
