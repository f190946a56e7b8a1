// AudioWorklet processor: while switched on, posts the first channel of
// its two inputs interleaved (input 0, input 1, input 0, ...) in render
// quanta. An input with nothing connected, or nothing playing, reads as
// silence.

'use strict'

class Capture extends AudioWorkletProcessor {
  constructor() {
    super()
    this.on = false
    this.port.onmessage = (e) => {
      this.on = e.data
    }
  }

  process(inputs) {
    if (!this.on) return true
    const a = inputs[0] && inputs[0][0]
    const b = inputs[1] && inputs[1][0]
    const n = (a && a.length) || (b && b.length) || 128
    const out = new Float32Array(2 * n)
    for (let i = 0; i < n; i++) {
      out[2 * i] = a ? a[i] : 0
      out[2 * i + 1] = b ? b[i] : 0
    }
    this.port.postMessage(out, [out.buffer])
    return true
  }
}

registerProcessor('capture', Capture)
