// Day ↔ night: the original covers the result on a canvas; dragging erases it
// (destination-out), so the result underneath shows through the scratches.

export function setup({ stage, before, result }) {
  const canvas = document.getElementById('scratch');
  const cursor = document.getElementById('scratch-cursor');
  const brush = document.getElementById('brush');
  const brushOut = document.getElementById('brush-value');
  const revealedOut = document.getElementById('revealed');
  document.getElementById('img-result').src = result.src;

  const w = result.naturalWidth;
  const h = result.naturalHeight;
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  let last = null;
  let keyPoint = null;

  function cover() {
    ctx.globalCompositeOperation = 'source-over';
    ctx.drawImage(before, 0, 0, w, h);
    measure();
  }

  // Brush size is in CSS pixels (what the person sees); the canvas may be drawn smaller.
  const scale = () => w / canvas.getBoundingClientRect().width;
  const radius = () => (Number(brush.value) / 2) * scale();

  function toCanvas(clientX, clientY) {
    const r = canvas.getBoundingClientRect();
    return { x: ((clientX - r.left) / r.width) * w, y: ((clientY - r.top) / r.height) * h };
  }

  function scratch(from, to) {
    ctx.globalCompositeOperation = 'destination-out';
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.lineWidth = radius() * 2;
    ctx.beginPath();
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(to.x + 0.01, to.y); // a zero-length line draws nothing; nudge it
    ctx.stroke();
    scheduleMeasure();
  }

  // Revealed share: count cleared pixels on a coarse grid (cheap, throttled).
  let measureQueued = false;
  function scheduleMeasure() {
    if (measureQueued) return;
    measureQueued = true;
    setTimeout(() => { measureQueued = false; measure(); }, 150);
  }
  function measure() {
    const data = ctx.getImageData(0, 0, w, h).data;
    let clear = 0;
    let total = 0;
    for (let y = 2; y < h; y += 4) {
      for (let x = 2; x < w; x += 4) {
        total += 1;
        if (data[(y * w + x) * 4 + 3] < 128) clear += 1;
      }
    }
    const share = total ? clear / total : 0;
    stage.dataset.revealed = share.toFixed(3);
    revealedOut.textContent = `${Math.round(share * 100)}% revealed`;
  }

  function placeCursor(p) {
    const s = 1 / scale();
    const d = Number(brush.value);
    cursor.style.width = `${d}px`;
    cursor.style.height = `${d}px`;
    cursor.style.transform = `translate(${p.x * s - d / 2}px, ${p.y * s - d / 2}px)`;
    cursor.hidden = false;
  }

  canvas.addEventListener('pointerdown', (e) => {
    if (e.button !== 0 && e.pointerType === 'mouse') return;
    canvas.setPointerCapture(e.pointerId);
    last = toCanvas(e.clientX, e.clientY);
    scratch(last, last);
    e.preventDefault();
  });
  canvas.addEventListener('pointermove', (e) => {
    const p = toCanvas(e.clientX, e.clientY);
    if (e.pointerType === 'mouse') placeCursor(p);
    if (!last) return;
    // Coalesced events keep fast strokes smooth instead of dotted.
    const points = e.getCoalescedEvents ? e.getCoalescedEvents().map((c) => toCanvas(c.clientX, c.clientY)) : [];
    for (const q of points.length ? points : [p]) { scratch(last, q); last = q; }
  });
  const end = () => { last = null; };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
  canvas.addEventListener('pointerleave', (e) => { if (e.pointerType === 'mouse') cursor.hidden = true; });

  // Keyboard: a brush that arrow keys drag across the photo; Enter scratches in place.
  canvas.addEventListener('focus', () => { keyPoint = keyPoint || { x: w / 2, y: h / 2 }; placeCursor(keyPoint); });
  canvas.addEventListener('blur', () => { cursor.hidden = true; });
  canvas.addEventListener('keydown', (e) => {
    const step = (e.shiftKey ? 0.1 : 0.03) * w;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (moves[e.key]) {
      const from = keyPoint;
      keyPoint = {
        x: Math.min(w, Math.max(0, from.x + moves[e.key][0])),
        y: Math.min(h, Math.max(0, from.y + moves[e.key][1])),
      };
      scratch(from, keyPoint);
    } else if (e.key === 'Enter' || e.key === ' ') {
      scratch(keyPoint, keyPoint);
    } else {
      return;
    }
    placeCursor(keyPoint);
    e.preventDefault();
  });

  brush.addEventListener('input', () => {
    brushOut.textContent = `${brush.value} px`;
    if (!cursor.hidden && keyPoint) placeCursor(keyPoint);
  });
  document.getElementById('reveal-all').addEventListener('click', () => { ctx.clearRect(0, 0, w, h); measure(); });
  document.getElementById('reset').addEventListener('click', cover);

  cover();
}
