// The published `vertojs` client with real WebRTC audio: werift (a WebRTC
// stack in TypeScript) stands in for the browser's RTCPeerConnection, `ws`
// for its WebSocket. It logs in, calls <destination> (the echo extension)
// and sends a known audio pattern every 20 ms until told to hang up,
// counting the packets that come back. The test drives it on stdin:
//
//   node vertojs_media.js <ws-url> <login> <passwd> <destination>
//
//   stdin "mark"    prints "MEDIA sent=<n> received=<n> matched=<n> maxgap=<ms>"
//                   for the packets since the previous mark (maxgap: the
//                   longest time between two packets coming back), then
//                   counts afresh; "ECHO 50" is printed once 50 packets
//                   have come back since the mark.
//   stdin "hangup"  hangs up with vertojs (verto.bye), prints "BYE <reply>"
//                   and exits 0.
//
// Also prints "LOGIN OK", "ANSWERED <callID>", "CONNECTED", and "CLOSED"
// when the switch closes the WebSocket (vertojs then reconnects and logs in
// again by itself: "RELOGIN").

'use strict'

const WS = require('ws')
const readline = require('readline')
const {
  RTCPeerConnection, RTCRtpCodecParameters, MediaStreamTrack, RtpPacket, RtpHeader,
} = require('werift')

const [url, login, passwd, dest] = process.argv.slice(2)

function say(...args) {
  console.log(...args)
}

function fail(why) {
  say('FAIL ' + why)
  process.exit(1)
}
setTimeout(() => fail('timeout'), 60000)

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// The replies to the client's requests, by id, for the test to read.
const replies = new Map()
let logins = 0
global.WebSocket = class extends WS {
  constructor(u) {
    super(u)
    this.on('message', (data) => {
      const m = JSON.parse(data.toString())
      if (m.id !== undefined && !m.method) replies.set(m.id, m)
      if (m.result && m.result.sessid && ++logins > 1) say('RELOGIN')
    })
    this.on('close', () => say('CLOSED'))
  }
}

// vertojs builds `new RTCSessionDescription({type, sdp})`, the browser's
// shape; werift takes such plain objects.
global.RTCSessionDescription = class {
  constructor(init) {
    Object.assign(this, init)
  }
}

// Only PCMU, as the switch offers and answers. vertojs asks for an ICE
// candidate pool of 1, which werift does not do (and needs not: it gathers
// at setLocalDescription).
global.RTCPeerConnection = class extends RTCPeerConnection {
  constructor(conf) {
    const { iceCandidatePoolSize, ...rest } = conf || {}
    super({
      ...rest,
      codecs: {
        audio: [new RTCRtpCodecParameters({ mimeType: 'audio/PCMU', clockRate: 8000, channels: 1, payloadType: 0 })],
      },
    })
    global.lastPc = this
  }
}

const { Verto } = require('vertojs')

// 160 μ-law bytes per 20 ms, each packet's different from its neighbours'
// (as media.js sends them); 0x7F and 0xFF are avoided.
function payload(n) {
  const b = Buffer.alloc(160)
  for (let i = 0; i < 160; i++) {
    let v = (n * 7 + i) % 254
    if (v === 0x7f) v = 0x10
    b[i] = v
  }
  return b
}

async function main() {
  const verto = new Verto({ transportConfig: { socketUrl: url, login, passwd }, ice_timeout: 3000 })
  await verto.login()
  say('LOGIN OK')
  const track = new MediaStreamTrack({ kind: 'audio' })
  const sent = new Set()
  let phase = { sent: 0, received: 0, matched: 0, maxgap: 0, echoed: false }
  let last = 0
  const call = verto.call([track], dest, { caller_id_number: '1000' })
  call.subscribeEvent('track', (remote) => {
    remote.onReceiveRtp.subscribe((rtp) => {
      const now = Date.now()
      if (last) phase.maxgap = Math.max(phase.maxgap, now - last)
      last = now
      phase.received++
      if (sent.has(rtp.payload.toString('hex'))) phase.matched++
      if (phase.matched >= 50 && !phase.echoed) {
        phase.echoed = true
        say('ECHO 50')
      }
    })
  })
  await new Promise((r) => call.subscribeEvent('answer', r))
  say('ANSWERED ' + call.id)
  const pc = global.lastPc
  const deadline = Date.now() + 10000
  while (pc.connectionState !== 'connected') {
    if (Date.now() > deadline) fail('no connection: ' + pc.connectionState)
    await sleep(20)
  }
  say('CONNECTED')

  let sending = true
  ;(async () => {
    const start = Date.now()
    for (let n = 0; sending; n++) {
      const p = payload(n)
      sent.add(p.toString('hex'))
      phase.sent++
      track.writeRtp(new RtpPacket(new RtpHeader({
        payloadType: 0, sequenceNumber: (n + 1) & 0xffff, timestamp: n * 160, marker: n === 0, ssrc: 4321,
      }), p))
      // Paced on the clock, not on the timers' drift.
      const next = start + (n + 1) * 20
      await sleep(Math.max(0, next - Date.now()))
    }
  })()

  const lines = readline.createInterface({ input: process.stdin })
  for await (const line of lines) {
    if (line === 'mark') {
      say(`MEDIA sent=${phase.sent} received=${phase.received} matched=${phase.matched} maxgap=${phase.maxgap}`)
      phase = { sent: 0, received: 0, matched: 0, maxgap: 0, echoed: false }
      last = 0
    } else if (line === 'hangup') {
      sending = false
      const before = new Set(replies.keys())
      call.hangup()
      const until = Date.now() + 5000
      let reply
      while (!reply && Date.now() < until) {
        await sleep(20)
        for (const [id, m] of replies) if (!before.has(id)) reply = m
      }
      say('BYE ' + JSON.stringify(reply ? (reply.result || reply.error) : null))
      await pc.close()
      process.exit(reply && reply.result ? 0 : 1)
    }
  }
}

main().catch((e) => fail(String((e && e.stack) || e)))
