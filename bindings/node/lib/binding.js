'use strict';

// Loads the prebuilt addon: prebuilds/<platform>-<arch>[-musl]/mtlspop.node, next to the
// libmtlspop.so.0 it links to (rpath $ORIGIN). Nothing is compiled at install time; require's
// cache makes this run once per process (and once per worker thread).

const fs = require('node:fs');
const path = require('node:path');
const { MtlsPopError } = require('./error.js');

const prebuilds = path.join(__dirname, '..', 'prebuilds');

// target: the prebuild directory for this machine. A musl build (Alpine) lives in
// <platform>-<arch>-musl; only when one ships is the C library checked (glibcVersionRuntime is
// absent from the process report on musl; making the report takes milliseconds).
function target() {
  const base = `${process.platform}-${process.arch}`;
  if (process.platform === 'linux' && fs.existsSync(path.join(prebuilds, `${base}-musl`))) {
    const header = process.report.getReport().header;
    if (!header.glibcVersionRuntime) return `${base}-musl`;
  }
  return base;
}

function load() {
  const dir = target();
  const file = path.join(prebuilds, dir, 'mtlspop.node');
  let binding;
  try {
    binding = require(file);
  } catch (e) {
    const err = new Error(
      `mtlspop: cannot load the native addon for ${dir} (${file}): ${e.message}. ` +
        'This package ships a prebuilt addon for linux-x64 (glibc) only.',
      { cause: e },
    );
    err.code = 'ERR_MTLSPOP_BINDING';
    throw err;
  }
  binding.setup(MtlsPopError);
  return binding;
}

module.exports = load();
