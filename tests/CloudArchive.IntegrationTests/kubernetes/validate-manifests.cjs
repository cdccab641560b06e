// Validates every Kubernetes manifest in a directory against the API's schemas as the npm package kubernetes-models
// compiles them (its OpenAPI schemas, checked with ajv: types, formats, enums, required fields), and also names each
// field no schema reads: those compiled schemas let unknown fields through, while kubectl's strict field validation
// refuses them (a misspelled `allowPrivilegeEscalaton` would otherwise pass, and be ignored by the cluster).
// YAML is read as 1.1, as Kubernetes reads it (0400 is octal, yes is true).
// Usage: node validate-manifests.cjs MODULES_DIR MANIFEST_DIR  (MODULES_DIR holds node_modules, see infra/install.sh)
// Prints one JSON array: [{file, index, apiVersion, kind, name, errors: [...], object}]; exits 0 when it could read them.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { createRequire } = require("node:module");

const [modules, dir] = process.argv.slice(2);
const load = createRequire(path.join(path.resolve(modules), "node_modules", "."));
const YAML = load("yaml");

const out = [];
for (const file of fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
  YAML.parseAllDocuments(fs.readFileSync(path.join(dir, file), "utf8"), { version: "1.1" }).forEach((doc, index) => {
    const errors = doc.errors.map((e) => e.message);
    const object = errors.length === 0 ? doc.toJS() : null;
    if (object !== null) errors.push(...validate(object));
    out.push({ file, index, apiVersion: object?.apiVersion ?? null, kind: object?.kind ?? null, name: object?.metadata?.name ?? null, errors, object });
  });
}
process.stdout.write(JSON.stringify(out));

function validate(object) {
  const { apiVersion, kind } = object ?? {};
  if (typeof apiVersion !== "string" || typeof kind !== "string") return ["a document without apiVersion and kind"];
  let model;
  try {
    model = load(`kubernetes-models/${apiVersion}`)[kind];
  } catch {
    model = undefined;
  }
  if (typeof model !== "function") return [`${apiVersion} ${kind} is not a kind of the Kubernetes API`];
  const read = new Map();
  const errors = [];
  try {
    model.prototype.validate.call(watch(object, read));
  } catch (e) {
    if (!Array.isArray(e.errors)) throw e;
    errors.push(...e.errors.map((x) => `${x.instancePath || "/"}: ${x.message}${x.params?.allowedValues ? " " + JSON.stringify(x.params.allowedValues) : ""}`));
  }
  unknownFields(object, read, "", errors);
  return errors;
}

// A view of the object that notes which keys the schema's validator reads, object by object.
function watch(value, read, proxies = new WeakMap()) {
  if (value === null || typeof value !== "object") return value;
  if (proxies.has(value)) return proxies.get(value);
  read.set(value, new Set());
  const proxy = new Proxy(value, {
    get(target, key) {
      if (typeof key === "string") read.get(target).add(key);
      return watch(target[key], read, proxies);
    },
    has(target, key) {
      if (typeof key === "string") read.get(target).add(key);
      return key in target;
    },
  });
  proxies.set(value, proxy);
  return proxy;
}

// Keys of an object the validator looked into but never read: fields no schema declares.
function unknownFields(value, read, where, errors) {
  if (value === null || typeof value !== "object" || !read.has(value)) return;
  if (Array.isArray(value)) {
    value.forEach((item, i) => unknownFields(item, read, `${where}/${i}`, errors));
    return;
  }
  const seen = read.get(value);
  for (const key of Object.keys(value)) {
    if (!seen.has(key)) errors.push(`${where}/${key}: unknown field`);
    else unknownFields(value[key], read, `${where}/${key}`, errors);
  }
}
