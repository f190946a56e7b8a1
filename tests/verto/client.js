// Drives hotswitch's mod_verto with the published `vertojs` client, as a
// browser page would, from Node: `ws` stands in for the browser's
// WebSocket and a stub RTCPeerConnection hands out a placeholder SDP (the
// switch carries no WebRTC media yet).
//
//   node client.js <ws-url> <login> <passwd> login
//   node client.js <ws-url> <login> <passwd> call <destination> <digits> <ms> [hold]
//   node client.js <ws-url> <login> <passwd> wait-bye <destination>
//   node client.js <ws-url> <login> <passwd> answer
//
// Prints one line per step ("LOGIN OK", "RECV {...}", "ANSWERED", ...) and
// exits 0 when the scenario ran to its end, 1 otherwise.

'use strict'

const fs = require('fs')
const WS = require('ws')

// VERTO_CA=<pem file>: a wss server whose certificate is that one is
// trusted (the switch's self-signed certificate).
const tls = process.env.VERTO_CA ? { ca: fs.readFileSync(process.env.VERTO_CA) } : {}

function say(...args) {
  console.log(...args)
}

// Every frame in both directions, for the test to check codes.
global.WebSocket = class extends WS {
  constructor(url) {
    super(url, tls)
    this.on('message', (data) => say('RECV ' + data.toString()))
  }
  send(data) {
    say('SEND ' + data)
    super.send(data)
  }
}

const SDP = [
  'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 't=0 0',
  'm=audio 9 UDP/TLS/RTP/SAVPF 0', 'c=IN IP4 127.0.0.1',
  'a=rtpmap:0 PCMU/8000', 'a=sendrecv', '',
].join('\r\n')

global.RTCSessionDescription = class {
  constructor(init) {
    Object.assign(this, init)
  }
}

global.RTCPeerConnection = class {
  constructor() {
    this.localDescription = null
    this.iceGatheringState = 'new'
  }
  addTrack() {
    setTimeout(() => this.onnegotiationneeded && this.onnegotiationneeded(), 0)
  }
  createOffer() {
    return Promise.resolve({ type: 'offer', sdp: SDP })
  }
  createAnswer() {
    return Promise.resolve({ type: 'answer', sdp: SDP })
  }
  setLocalDescription(d) {
    this.localDescription = d
    return Promise.resolve()
  }
  setRemoteDescription(d) {
    this.remoteDescription = d
    return Promise.resolve()
  }
  getStats() {
    return Promise.resolve(new Map())
  }
  close() {}
}

const { Verto } = require('vertojs')

const [url, login, passwd, mode, ...rest] = process.argv.slice(2)
const fakeTrack = { kind: 'audio', id: 'fake-audio' }

function finish(ok, why) {
  say(ok ? 'DONE' : 'FAIL ' + why)
  process.exit(ok ? 0 : 1)
}

setTimeout(() => finish(false, 'timeout'), 15000)

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms))
}

async function main() {
  const verto = new Verto({
    transportConfig: { socketUrl: url, login, passwd },
    ice_timeout: 100,
  })
  try {
    await verto.login()
    say('LOGIN OK')
  } catch (e) {
    say('LOGIN FAILED')
    if (mode === 'login') finish(true)
    return finish(false, 'login refused')
  }
  if (mode === 'login') {
    // The switch's verto.clientReady follows the login reply.
    await sleep(300)
    return finish(true)
  }

  if (mode === 'call' || mode === 'wait-bye') {
    const [dest, digits, ms, hold] = rest
    const call = verto.call([fakeTrack], dest)
    const answered = new Promise((r) => call.subscribeEvent('answer', r))
    const ended = new Promise((r) => call.subscribeEvent('bye', r))
    await answered
    say('ANSWERED ' + call.id)
    if (mode === 'wait-bye') {
      await ended
      say('BYE FROM SWITCH')
      return finish(true)
    }
    if (digits) {
      call.dtmf(digits)
      say('DTMF ' + digits)
    }
    if (hold === 'hold') {
      const held = new Promise((r) => call.subscribeEvent('hold', r))
      call.hold()
      await held
      say('HELD')
      const unheld = new Promise((r) => call.subscribeEvent('unhold', r))
      call.unhold()
      await unheld
      say('UNHELD')
    }
    await sleep(Number(ms || 500))
    call.hangup()
    say('HUNG UP')
    // Let the reply to verto.bye arrive before leaving.
    await sleep(300)
    return finish(true)
  }

  if (mode === 'answer') {
    say('READY')
    verto.subscribeEvent('invite', (call) => {
      say('INVITED ' + call.id)
      call.subscribeEvent('bye', () => {
        say('BYE FROM SWITCH')
        setTimeout(() => finish(true), 100)
      })
      call.answer([fakeTrack])
    })
    return
  }
  finish(false, 'unknown mode ' + mode)
}

main().catch((e) => finish(false, String(e && e.stack || e)))
