// The page tests/tests/sofia_ws_browser.rs loads in headless Chromium: a
// browser phone on JsSIP (its browser bundle: the global `JsSIP`). It
// registers over the WebSocket, calls the destination with the (fake)
// microphone, records what it sends and what it receives for a while, and
// hangs up. The recording goes back to the test, which judges it; the
// page only reports.
//
//   index.html?ws=<url>&user=<n>&domain=<d>&passwd=<pw>&dest=<n>&ms=<capture ms>
//
// Reports by POST to the server that served it: /log (one line per step),
// /capture?dest=<n>&rate=<Hz> (16-bit little-endian stereo: left what was
// sent, right what came back), /done or /fail.

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
async function connected(pc) {
  for (;;) {
    const stats = await pc.getStats()
    for (const s of stats.values()) {
      if (s.type === 'transport' && s.dtlsState === 'connected') return
    }
    await sleep(50)
  }
}

async function rtpSummary(pc) {
  const out = {}
  const stats = await pc.getStats()
  for (const s of stats.values()) {
    if (s.type === 'outbound-rtp') out.packetsSent = s.packetsSent
    if (s.type === 'inbound-rtp') out.packetsReceived = s.packetsReceived
    if (s.type === 'codec') out.codecs = (out.codecs || []).concat(s.mimeType)
  }
  return JSON.stringify(out)
}

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

async function main() {
  const domain = q.get('domain')
  const ua = new JsSIP.UA({
    sockets: [new JsSIP.WebSocketInterface(q.get('ws'))],
    uri: 'sip:' + q.get('user') + '@' + domain,
    password: q.get('passwd'),
    register: true,
  })
  const registered = new Promise((ok, fail) => {
    ua.on('registered', ok)
    ua.on('registrationFailed', (e) => fail(new Error('registration failed: ' + e.cause)))
  })
  ua.start()
  await within(10000, 'the registration', registered)
  await say('REGISTERED')
  // The switch's echo is not the local loudspeaker: no processing may
  // cancel or reshape what comes back.
  const mic = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    video: false,
  })
  const ctx = new AudioContext()
  await ctx.audioWorklet.addModule('/capture.js')
  await ctx.resume()
  const node = new AudioWorkletNode(ctx, 'capture', { numberOfInputs: 2, numberOfOutputs: 1 })
  node.connect(ctx.destination)
  const sent = ctx.createMediaStreamSource(mic)
  sent.connect(node, 0, 0)

  const dest = q.get('dest')
  const session = ua.call('sip:' + dest + '@' + domain, {
    mediaStream: mic,
    pcConfig: { iceServers: [] },
  })
  const confirmed = new Promise((ok, fail) => {
    session.on('confirmed', ok)
    session.on('failed', (e) => fail(new Error('the call failed: ' + e.cause)))
  })
  await within(10000, 'the answer of ' + dest, confirmed)
  // The answer is applied: the receiver's track is the switch's audio.
  const pc = session.connection
  const receiver = pc.getReceivers().find((r) => r.track && r.track.kind === 'audio')
  if (!receiver) throw new Error('no audio receiver after the answer')
  const remote = new MediaStream([receiver.track])
  const audio = document.getElementById('remote')
  audio.srcObject = remote
  await audio.play()
  const received = ctx.createMediaStreamSource(remote)
  received.connect(node, 0, 1)
  await within(10000, 'DTLS to connect', connected(pc))
  await say('ANSWERED ' + dest)
  await sleep(SETTLE_MS)
  const pcm = await record(node, CAPTURE_MS)
  await say('RTP ' + dest + ' ' + (await rtpSummary(pc)))
  await post('/capture?dest=' + dest + '&rate=' + ctx.sampleRate, pcm.buffer)
  const ended = new Promise((r) => session.on('ended', r))
  session.terminate()
  await within(5000, 'the end of the call', ended)
  await say('HUNG UP ' + dest)
  ua.stop()
  await post('/done', '')
}

main().catch((e) => post('/fail', String((e && e.stack) || e)))
