// FeatureMapView (cnnviz_widgets/widgets/view.py): a layer's feature maps drawn on a canvas.
//
// The kernel sends a layer's offsets and scales (to read values back), its channel sum and the
// chunks of channels the picture needs (uint8 colormap indexes, 16 channels a chunk); the
// 256×3 colormap tables once. Channel, colormap, mode and grid page changes are drawn here, at
// once; a chunk not here yet is asked for (a "need" message), and the next chunk in the
// direction the channel moves is asked for ahead. The same traits go back to the kernel.
// The pictures are the kernel renderer's, pixel for pixel: same indexes, same tables, same
// integer upscaling and grid geometry (render.upscale_nearest, render.channel_grid).

const MODES = ["channel", "grid", "sum"];

async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// The bytes of a binary buffer as the widget manager hands it over (DataView or ArrayBuffer).
function bytesOf(buffer) {
  if (buffer instanceof ArrayBuffer) return new Uint8Array(buffer);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

// A packed array ({dtype, shape, compression, buffer}) as a typed array.
async function unpack(packed) {
  let bytes = bytesOf(packed.buffer);
  if (packed.compression === "deflate") bytes = await inflate(bytes);
  if (packed.dtype === "uint8") return bytes;
  if (packed.dtype === "float32") {
    const copy = bytes.slice();  // aligned copy
    return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
  }
  throw new Error(`cnnviz: unexpected dtype ${packed.dtype}`);
}

function needsInflate(packed) {
  return packed && packed.compression === "deflate";
}

// Colour as one little-endian RGBA word.
function rgba(r, g, b) {
  return ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

// White digits on a black box, as render.labels.stamp_text writes them (clipped to the picture).
function stampText(out, W, H, text, x, y, scale, digits) {
  const n = text.length;
  const w = (4 * n - 1) * scale, h = 5 * scale, m = scale;
  const y0 = Math.max(y - m, 0), x0 = Math.max(x - m, 0);
  const y1 = Math.min(y + h + m, H), x1 = Math.min(x + w + m, W);
  if (y1 <= y0 || x1 <= x0) return;
  const black = rgba(0, 0, 0), white = rgba(255, 255, 255);
  for (let yy = y0; yy < y1; yy++) out.fill(black, yy * W + x0, yy * W + x1);
  for (let i = 0; i < n; i++) {
    const glyph = digits[text[i]];
    for (let r = 0; r < 5; r++) {
      for (let c = 0; c < 3; c++) {
        if (glyph[r][c] !== "#") continue;
        for (let dy = 0; dy < scale; dy++) {
          const py = y + r * scale + dy;
          if (py >= H) continue;
          for (let dx = 0; dx < scale; dx++) {
            const px = x + (4 * i + c) * scale + dx;
            if (px < W) out[py * W + px] = white;
          }
        }
      }
    }
  }
}

function formatValue(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(3);
  return String(Number(v.toPrecision(4)));
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "cnnviz-fmv";
  const canvas = document.createElement("canvas");
  canvas.className = "cnnviz-fmv-canvas";
  canvas.width = 1;
  canvas.height = 1;
  const readout = document.createElement("div");
  readout.className = "cnnviz-fmv-readout";
  readout.textContent = "\u00a0";
  root.append(canvas, readout);
  el.append(root);
  const ctx = canvas.getContext("2d");

  // Keys pressed on the explorer's controls belong to them: Notebook 7 binds ArrowRight to
  // a notebook command for any focused element (selector "... :focus"), which swallows the key
  // before the channel slider sees it. Lumino skips shortcuts for an event whose target is
  // marked so; every control of the explorer is marked as it takes the focus. The explorer is
  // an ancestor once this view is attached, which may be after render() returns.
  let marks = 0;
  const mark = (event) => event.target.setAttribute("data-lm-suppress-shortcuts", "true");
  const markExplorer = () => {
    const explorer = el.closest(".cnnviz-activation-explorer, .cnnviz-explorer");
    if (explorer) explorer.addEventListener("focusin", mark);
    else if (++marks < 50) setTimeout(markExplorer, 200);
  };
  markExplorer();

  let layer = null;   // {name, channels, height, width, planes, offset, scale, grid}
  let loads = 0;      // newest load wins
  let loading = false;
  let frames = 0;
  let luts = [];      // one Uint32Array(256) per colormap
  let geometry = null;  // of the picture drawn: for hover and clicks
  let image = null;     // reused ImageData
  let pending = false;
  let askedRaw = false;
  let lastChannel = 0;  // the direction the channel moves: which chunk to ask for ahead

  function readLuts() {
    const packed = model.get("luts");
    luts = [];
    if (!packed) return;
    const bytes = bytesOf(packed.buffer);
    const n = packed.shape[0];
    for (let i = 0; i < n; i++) {
      const table = new Uint32Array(256);
      for (let j = 0; j < 256; j++) {
        const o = (i * 256 + j) * 3;
        table[j] = rgba(bytes[o], bytes[o + 1], bytes[o + 2]);
      }
      luts.push(table);
    }
  }

  // Copy a chunk's planes into the layer's arrays; channels without one stay unknown.
  function place(target, kind, index, bytes) {
    const g = kind === "grid" ? target.grid : target;
    g.planes.set(bytes, index * target.chunk * g.height * g.width);
    target.have.add(`${kind}:${index}`);
  }

  async function load() {
    const token = ++loads;
    const data = model.get("data");
    if (!data) {
      layer = null;
      return;
    }
    if (data.chunks.some((c) => needsInflate(c.planes)) && typeof DecompressionStream === "undefined") {
      if (!askedRaw) model.send({ type: "need_raw" });
      askedRaw = true;
      return;
    }
    loading = true;
    try {
      const [offset, scale, sum] = await Promise.all(
        [unpack(data.offset), unpack(data.scale), unpack(data.sum)]);
      const chunks = await Promise.all(data.chunks.map((c) => unpack(c.planes)));
      let grid = null;
      if (data.grid) {
        const [go, gs] = await Promise.all([unpack(data.grid.offset), unpack(data.grid.scale)]);
        const size = data.grid.height * data.grid.width;
        grid = { height: data.grid.height, width: data.grid.width, offset: go, scale: gs,
                 planes: new Uint8Array(data.channels * size), kind: "grid" };
      }
      if (token !== loads) return;  // a newer layer arrived meanwhile
      const size = data.height * data.width;
      const planes = new Uint8Array((data.channels + 1) * size);
      planes.set(sum, data.channels * size);
      layer = {
        name: data.layer, serial: data.serial, chunk: data.chunk, channels: data.channels,
        height: data.height, width: data.width, planes, offset, scale,
        have: new Set(), asked: new Set(),
      };
      layer.grid = grid || { height: data.height, width: data.width, planes, offset, scale,
                             kind: "planes" };
      data.chunks.forEach((c, i) => place(layer, c.kind, c.index, chunks[i]));
    } finally {
      if (token === loads) loading = false;
    }
    draw();
  }

  // A chunk the page asked for (see ask()).
  async function onChunk(msg, buffers) {
    if (!layer || msg.serial !== layer.serial || !buffers || !buffers.length) return;
    let bytes = bytesOf(buffers[0]);
    if (msg.compression === "deflate") bytes = await inflate(bytes);
    if (!layer || msg.serial !== layer.serial) return;  // the layer changed meanwhile
    place(layer, msg.kind, msg.index, bytes);
    schedule();
  }

  // Ask the kernel once for a chunk; true when it is here already.
  function ask(kind, index) {
    const key = `${kind}:${index}`;
    if (layer.have.has(key)) return true;
    if (index >= 0 && index * layer.chunk < layer.channels && !layer.asked.has(key)) {
      layer.asked.add(key);
      model.send({ type: "need", serial: layer.serial, kind, index });
    }
    return false;
  }

  // The plane the new layer's first picture needs, sent ahead of the layer (view.py).
  function onPreview(msg, buffers) {
    if (msg && msg.type === "chunk") return onChunk(msg, buffers);
    if (!msg || msg.type !== "preview" || !buffers || !buffers.length) return;
    ++loads;  // a load of an older layer must not replace this one
    loading = false;
    const size = msg.height * msg.width;
    const planes = new Uint8Array((msg.channels + 1) * size);
    planes.set(bytesOf(buffers[0]), msg.plane * size);
    const offset = new Float32Array(msg.channels + 1);
    const scale = new Float32Array(msg.channels + 1);
    offset[msg.plane] = msg.offset;
    scale[msg.plane] = msg.scale;
    layer = {
      name: msg.layer, channels: msg.channels, height: msg.height, width: msg.width,
      planes, offset, scale, only: msg.plane,
      grid: { height: msg.height, width: msg.width, planes, offset, scale },
    };
    draw();
  }

  function schedule() {
    if (pending) return;
    pending = true;
    queueMicrotask(() => { pending = false; draw(); });
  }

  function frame(width, height) {
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    if (!image || image.width !== width || image.height !== height) {
      image = ctx.createImageData(width, height);
    }
    return new Uint32Array(image.data.buffer);
  }

  // One map, upscaled by the smallest integer factor reaching view_min_side.
  function drawSingle(plane, lut, geo) {
    const h = layer.height, w = layer.width;
    const k = Math.max(1, Math.ceil(geo.view_min_side / Math.min(h, w)));
    const W = w * k;
    const out = frame(W, h * k);
    const base = plane * h * w;
    for (let y = 0; y < h; y++) {
      const row = y * k * W;
      for (let x = 0; x < w; x++) {
        const c = lut[layer.planes[base + y * w + x]];
        const o = row + x * k;
        for (let d = 0; d < k; d++) out[o + d] = c;
      }
      for (let d = 1; d < k; d++) out.copyWithin(row + d * W, row, row + W);
    }
    geometry = { kind: "single", plane, k };
  }

  // A page of channels as channel_grid lays it out.
  function drawGrid(page, lut, geo) {
    const g = layer.grid;
    const start = page * geo.page_size;
    const n = Math.max(0, Math.min(geo.page_size, layer.channels - start));
    if (n === 0) return false;
    const columns = Math.min(geo.columns, n);
    const rows = Math.ceil(n / columns);
    const k = Math.max(1, Math.ceil(geo.tile_min_side / Math.min(g.height, g.width)));
    const th = g.height * k, tw = g.width * k, pad = geo.pad;
    const W = pad + columns * (tw + pad), H = pad + rows * (th + pad);
    const out = frame(W, H);
    const v = geo.pad_value;
    out.fill(rgba(v, v, v));
    const size = g.height * g.width;
    for (let i = 0; i < n; i++) {
      const top = pad + Math.floor(i / columns) * (th + pad);
      const left = pad + (i % columns) * (tw + pad);
      const base = (start + i) * size;
      for (let y = 0; y < g.height; y++) {
        const row = (top + y * k) * W + left;
        for (let x = 0; x < g.width; x++) {
          const c = lut[g.planes[base + y * g.width + x]];
          const o = row + x * k;
          for (let d = 0; d < k; d++) out[o + d] = c;
        }
        for (let d = 1; d < k; d++) out.copyWithin(row + d * W, row, row + tw);
      }
    }
    if (geo.digits && Math.min(th, tw) >= 8) {
      const side = Math.min(th, tw);
      const scale = side < 24 ? 1 : side < 128 ? 2 : 3;
      for (let i = 0; i < n; i++) {
        const top = pad + Math.floor(i / columns) * (th + pad);
        const left = pad + (i % columns) * (tw + pad);
        stampText(out, W, H, String(start + i), left + scale, top + scale, scale, geo.digits);
      }
    }
    geometry = { kind: "grid", start, n, columns, rows, k, th, tw, pad };
    return true;
  }

  function draw() {
    if (!layer || loading) return;
    const lut = luts[model.get("cmap_index")];
    const geo = model.get("geometry");
    if (!lut || !geo) return;
    const mode = MODES[model.get("mode_index")] || "channel";
    const channel = Math.min(Math.max(0, model.get("channel")), layer.channels - 1);
    if (layer.only !== undefined) {  // a preview: its one plane until the layer is here
      if (mode === "grid") return;
      drawSingle(layer.only, lut, geo);
    } else if (mode === "grid") {
      const page = model.get("page_number") - 1;
      const first = page * geo.page_size;
      const last = Math.min(first + geo.page_size, layer.channels) - 1;
      let here = true;
      for (let i = Math.floor(first / layer.chunk); i <= Math.floor(last / layer.chunk); i++) {
        here = ask(layer.grid.kind, i) && here;
      }
      if (!here || !drawGrid(page, lut, geo)) return;
    } else if (mode === "sum") {
      drawSingle(layer.channels, lut, geo);
    } else {
      const chunk = Math.floor(channel / layer.chunk);
      const ahead = chunk + (channel < lastChannel ? -1 : 1);
      if (!ask("planes", chunk)) return;
      ask("planes", ahead);  // scrubbing on: the next chunk is likely wanted soon
      lastChannel = channel;
      drawSingle(channel, lut, geo);
    }
    ctx.putImageData(image, 0, 0);
    frames += 1;
    canvas.dataset.layer = layer.name;
    canvas.dataset.state = `${mode}|${channel}|${model.get("cmap_index")}|${model.get("page_number")}`;
    canvas.dataset.frame = String(frames);  // last: a watcher sees a finished frame
  }

  // Where a mouse event falls: the map cell and its value, or null.
  function locate(event) {
    if (!layer || !geometry) return null;
    const r = canvas.getBoundingClientRect();
    if (!r.width || !r.height) return null;
    const px = Math.floor((event.clientX - r.left) * canvas.width / r.width);
    const py = Math.floor((event.clientY - r.top) * canvas.height / r.height);
    if (px < 0 || py < 0 || px >= canvas.width || py >= canvas.height) return null;
    const gm = geometry;
    let plane, x, y, src;
    if (gm.kind === "single") {
      plane = gm.plane;
      x = Math.floor(px / gm.k);
      y = Math.floor(py / gm.k);
      src = layer;
    } else {
      const cx = px - gm.pad, cy = py - gm.pad;
      if (cx < 0 || cy < 0) return null;
      const col = Math.floor(cx / (gm.tw + gm.pad)), row = Math.floor(cy / (gm.th + gm.pad));
      const ox = cx - col * (gm.tw + gm.pad), oy = cy - row * (gm.th + gm.pad);
      if (ox >= gm.tw || oy >= gm.th || col >= gm.columns || row >= gm.rows) return null;
      const i = row * gm.columns + col;
      if (i >= gm.n) return null;
      plane = gm.start + i;
      x = Math.floor(ox / gm.k);
      y = Math.floor(oy / gm.k);
      src = layer.grid;
    }
    if (x >= src.width || y >= src.height) return null;
    const index = src.planes[plane * src.height * src.width + y * src.width + x];
    const value = src.offset[plane] + index * src.scale[plane];
    const channel = plane === layer.channels ? null : plane;
    return { channel, x, y, value, step: src.scale[plane], grid: gm.kind === "grid" };
  }

  function onMove(event) {
    const hit = locate(event);
    if (!hit) {
      readout.textContent = "\u00a0";
      delete readout.dataset.value;
      return;
    }
    const what = hit.channel === null ? "sum" : `channel ${hit.channel}`;
    const mean = hit.grid && layer.grid.planes !== layer.planes ? " (block mean)" : "";
    readout.textContent = `${what} · x ${hit.x}, y ${hit.y} · value ${formatValue(hit.value)}${mean}`;
    readout.dataset.value = String(hit.value);
    readout.dataset.step = String(hit.step);
    readout.dataset.channel = hit.channel === null ? "sum" : String(hit.channel);
    readout.dataset.x = String(hit.x);
    readout.dataset.y = String(hit.y);
  }

  function onLeave() {
    readout.textContent = "\u00a0";
    delete readout.dataset.value;
  }

  // A click on a grid tile opens that channel, here and now; the kernel follows.
  function onClick(event) {
    if (!geometry || geometry.kind !== "grid") return;
    const hit = locate(event);
    if (!hit || hit.channel === null) return;
    model.set("channel", hit.channel);
    model.set("mode_index", 0);
    model.save_changes();
    schedule();
  }

  const onData = () => { load(); };
  const onLuts = () => { readLuts(); schedule(); };
  const events = ["channel", "mode_index", "cmap_index", "page_number", "geometry"]
    .map((name) => `change:${name}`);
  model.on("change:data", onData);
  model.on("change:luts", onLuts);
  model.on("msg:custom", onPreview);
  for (const name of events) model.on(name, schedule);
  canvas.addEventListener("mousemove", onMove);
  canvas.addEventListener("mouseleave", onLeave);
  canvas.addEventListener("click", onClick);
  readLuts();
  load();

  return () => {
    model.off("change:data", onData);
    model.off("change:luts", onLuts);
    model.off("msg:custom", onPreview);
    for (const name of events) model.off(name, schedule);
  };
}

export default { render };
