// The page tests/tests/verto_browser.rs loads in headless Chromium: a
// browser app on the published verto client (vertojs's browser bundle: its
// global `Verto` is the module, `Verto.Verto` the client). It logs in, then for each destination calls it with the
// (fake) microphone, records what it sends and what it receives for a
// while, and hangs up. The recordings go back to the test, which judges
// them; the page only reports.
//
//   index.html?ws=<url>&login=<user@domain>&passwd=<pw>&dest=<n>[,<n>...]&ms=<capture ms>
//
// Reports by POST to the server that served it: /log (one line per step),
// /capture?dest=<n>&rate=<Hz> (16-bit little-endian stereo: left what was
// sent, right what came back, sample-aligned), /done or /fail.

'use strict'

const q = new URLSearchParams(location.search)
const CAPTURE_MS = Number(q.get('ms') || 3000)
// How long media may take to flow after the answer before recording.
const SETTLE_MS = 700

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function post(path, body) {
  return fetch(path, { method: 'POST', body })
}

async function say(line) {
  console.log(line)
  await post('/log', line)
}

function within(ms, what, promise) {
  return Promise.race([
    promise,
    sleep(ms).then(() => {
      throw new Error('timed out waiting for ' + what)
    }),
  ])
}

// Waits until the call's DTLS transport is up, by the public getStats().
async function connected(call) {
  for (;;) {
    const stats = await call.getStats()
    for (const s of stats.values()) {
      if (s.type === 'transport' && s.dtlsState === 'connected') return
    }
    await sleep(50)
  }
}

// What the statistics say about the call's RTP, for the test's messages.
async function rtpSummary(call) {
  const out = {}
  const stats = await call.getStats()
  for (const s of stats.values()) {
    if (s.type === 'outbound-rtp') out.packetsSent = s.packetsSent
    if (s.type === 'inbound-rtp') out.packetsReceived = s.packetsReceived
    if (s.type === 'codec') out.codecs = (out.codecs || []).concat(s.mimeType)
  }
  return JSON.stringify(out)
}

// Records `ms` of both inputs of the capture node: sent on the left,
// received on the right.
async function record(node, ms) {
  const chunks = []
  node.port.onmessage = (e) => chunks.push(e.data)
  node.port.postMessage(true)
  await sleep(ms)
  node.port.postMessage(false)
  await sleep(50)
  node.port.onmessage = null
  const n = chunks.reduce((k, c) => k + c.length, 0)
  const pcm = new Int16Array(n)
  let i = 0
  for (const c of chunks) {
    for (const v of c) pcm[i++] = Math.max(-32768, Math.min(32767, Math.round(v * 32767)))
  }
  return pcm
}

async function oneCall(verto, ctx, mic, dest) {
  const node = new AudioWorkletNode(ctx, 'capture', { numberOfInputs: 2, numberOfOutputs: 1 })
  node.connect(ctx.destination)
  const sent = ctx.createMediaStreamSource(mic)
  sent.connect(node, 0, 0)

  const call = verto.call(mic.getAudioTracks(), dest)
  const track = new Promise((r) => call.subscribeEvent('track', r))
  const answered = new Promise((r) => call.subscribeEvent('answer', r))
  await within(10000, 'the answer of ' + dest, answered)
  const remote = new MediaStream([await within(5000, 'the remote track', track)])
  const audio = document.getElementById('remote')
  audio.srcObject = remote
  await audio.play()
  const received = ctx.createMediaStreamSource(remote)
  received.connect(node, 0, 1)
  await within(10000, 'DTLS to connect', connected(call))
  await say('ANSWERED ' + dest + ' ' + call.id)
  await sleep(SETTLE_MS)

  const pcm = await record(node, CAPTURE_MS)
  await say('RTP ' + dest + ' ' + (await rtpSummary(call)))
  await post('/capture?dest=' + dest + '&rate=' + ctx.sampleRate, pcm.buffer)

  call.hangup()
  // vertojs leaves its RTCPeerConnection open after a hangup.
  call.rtc.pc.close()
  sent.disconnect()
  received.disconnect()
  node.disconnect()
  audio.srcObject = null
  await say('HUNG UP ' + dest)
}

async function main() {
  const verto = new Verto.Verto({
    transportConfig: { socketUrl: q.get('ws'), login: q.get('login'), passwd: q.get('passwd') },
    rtcConfig: {},
    ice_timeout: 3000,
  })
  await within(10000, 'the login', verto.login())
  await say('LOGIN OK')
  // The switch's echo is not the local loudspeaker: no processing may
  // cancel or reshape what comes back.
  const mic = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    video: false,
  })
  const ctx = new AudioContext()
  await ctx.audioWorklet.addModule('/capture.js')
  await ctx.resume()
  for (const dest of q.get('dest').split(',')) {
    await oneCall(verto, ctx, mic, dest)
    // Let the switch finish the hangup before the next call.
    await sleep(300)
  }
  await post('/done', '')
}

main().catch((e) => post('/fail', String((e && e.stack) || e)))
