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

const state = {
  page: 1, total: 0, selected: null,
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

function showError(err) {
  if (!(err instanceof ApiError)) {
    err = new ApiError("CONSOLE_ERROR", String(err && err.message || err), "-", 0);
  }
  $("error-code").textContent = err.code;
  $("error-message").textContent = err.message;
  $("error-request-id").textContent = err.requestId;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
}

// Guards an action of the user: its API error is shown, with its code and requestId.
function guarded(work) {
  return async (event) => {
    if (event) event.preventDefault();
    try {
      await work(event);
    } catch (err) {
      showError(err);
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

function nameButton(image) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "link";
  button.textContent = image.imageName;
  button.setAttribute("aria-label", "Details of " + image.imageName + " (" + image.imageId + ")");
  button.addEventListener("click", guarded(() => openDetails(image.imageId)));
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

async function loadImages() {
  const params = filters();
  params.pageNum = state.page;
  const answer = await call("DescribeImages", params, SEED, true);
  const body = $("images").tBodies[0];
  body.replaceChildren();
  for (const image of answer.images) {
    const row = document.createElement("tr");
    const name = document.createElement("td");
    name.appendChild(nameButton(image));
    row.appendChild(name);
    cell(row, image.imageType === "CUSTOM_IMAGE" ? "Custom" : "Public");
    cell(row, image.imageStatus, "status-" + image.imageStatus);
    cell(row, image.regionId);
    cell(row, image.category + " " + image.imageVersion);
    cell(row, image.createTime);
    body.appendChild(row);
  }
  state.total = answer.totalCount;
  const pages = Math.max(1, Math.ceil(answer.totalCount / params.pageSize));
  $("total").textContent = answer.totalCount === 1 ? "1 image" : answer.totalCount + " images";
  $("page").textContent = "Page " + state.page + " of " + pages;
  $("prev").disabled = state.page <= 1;
  $("next").disabled = state.page >= pages;
}

async function loadCustom() {
  const answer = await call("DescribeImages", { imageType: "CUSTOM_IMAGE", pageSize: 1000 },
    SEED, true);
  const body = $("custom").tBodies[0];
  body.replaceChildren();
  let building = 0;
  for (const image of answer.images) {
    const row = document.createElement("tr");
    const name = document.createElement("td");
    name.appendChild(nameButton(image));
    row.appendChild(name);
    cell(row, image.imageStatus, "status-" + image.imageStatus);
    cell(row, image.regionId);
    cell(row, image.createTime);
    body.appendChild(row);
    if (image.imageStatus === "CREATING") building += 1;
  }
  if (answer.images.length === 0) {
    const row = document.createElement("tr");
    cell(row, "No custom images yet.").colSpan = 4;
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
    cell(row, quota.regionId);
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
  if (state.cursor === null) {
    // Where the feed stands before the lists are read: no change after it is missed.
    state.cursor = (await call("DescribeImageChanges", { fromNow: true })).nextCursor;
  }
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
  ["imageStatus", "Status"], ["regionId", "Region"], ["category", "Category"],
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
  const custom = image.imageType === "CUSTOM_IMAGE";
  $("rename-form").hidden = !custom;
  $("delete").hidden = !custom;
  $("delete").disabled = image.imageStatus === "CREATING";
  $("delete").title = image.imageStatus === "CREATING" ? "An image being built cannot be deleted." : "";
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
  const select = $("f-region");
  select.replaceChildren(new Option("All regions", ""));
  for (const region of regions.regions) {
    select.appendChild(new Option(region.regionName + " (" + region.regionId + ")",
      region.regionId));
  }
  $("sign-in").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = false;
  $("token").value = "";
  clearError();
  state.page = 1;
  await refresh();
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

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", guarded(() => signIn($("token").value.trim())));
  $("sign-out").addEventListener("click", signOut);
  $("error-close").addEventListener("click", clearError);
  $("filters").addEventListener("submit", guarded(async () => {
    state.page = 1;
    await loadImages();
  }));
  $("filters").addEventListener("change", guarded(async () => {
    state.page = 1;
    await loadImages();
  }));
  $("prev").addEventListener("click", guarded(async () => {
    state.page = Math.max(1, state.page - 1);
    await loadImages();
  }));
  $("next").addEventListener("click", guarded(async () => {
    state.page += 1;
    await loadImages();
  }));
  $("details-close").addEventListener("click", closeDetails);
  $("rename-form").addEventListener("submit", guarded(async () => {
    await call("ModifyImagesAttributes", {
      imageIds: [state.selected], imageName: $("rename-name").value.trim(),
    });
    clearError();
    await refresh();
  }));
  $("delete").addEventListener("click", guarded(async () => {
    const id = state.selected;
    const name = $("details-id").textContent;
    if (!(await confirmDelete({ id, name }))) return;
    await call("DeleteImages", { imageIds: [id] });
    closeDetails();
    clearError();
    await refresh();
  }));
  $("create-form").addEventListener("submit", guarded(async () => {
    const form = new FormData($("create-form"));
    const params = { instanceId: form.get("instanceId").trim(), imageName: form.get("imageName").trim() };
    const description = form.get("imageDescription").trim();
    if (description) params.imageDescription = description;
    const created = await call("CreateImage", params);
    $("create-form").reset();
    clearError();
    await refresh();
    await openDetails(created.imageId);
  }));
  if (token()) guarded(() => signIn(token()))();
});
