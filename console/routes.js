// Where each page lives in the URL hash (app.js routes on these).

// Keys in the hash: percent-encoded, but '/' left readable.
export function encodeKeyForHash(key) {
  return encodeURIComponent(key).replace(/%2F/g, "/");
}

export function keysHref(prefix, query) {
  const q = query ? new URLSearchParams(query).toString() : "";
  return "#/keys/" + encodeKeyForHash(prefix) + (q ? "?" + q : "");
}
export function keyHref(key) {
  return "#/key/" + encodeKeyForHash(key);
}
export function newHref(prefix) {
  return "#/new/" + encodeKeyForHash(prefix || "");
}
export function clusterHref() {
  return "#/cluster";
}
export function backupsHref() {
  return "#/backups";
}
