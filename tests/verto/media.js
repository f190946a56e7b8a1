// A WebRTC client (werift, a WebRTC stack in TypeScript) talking to
// hotswitch's mod_verto with raw verto JSON-RPC: it logs in and either
// calls <destination> (offering PCMU with ICE and DTLS-SRTP) or, with
// "answer", answers the switch's call; then it sends a known audio pattern
// for two seconds and counts the packets that come back (the test puts the
// echo application on the far side).
//
//   node media.js <ws-url> <login> <passwd> call <destination>
//   node media.js <ws-url> <login> <passwd> answer
//   node media.js <ws-url> <login> <passwd> reattach <destination>
//
// Prints "MEDIA sent=<n> received=<n> matched=<n>", hangs up and exits 0.
// "reattach" calls, sends half the pattern, drops its WebSocket, connects
// again with its session id, answers the switch's verto.attach with a new
// peer connection and sends the other half: "MEDIA" counts the first
// half, "REATTACHED uuid=<call> sent=<n> matched=<n>" the second.

'use strict'

const WebSocket = require('ws')
const {
  RTCPeerConnection, RTCRtpCodecParameters, MediaStreamTrack, RtpPacket, RtpHeader,
} = require('werift')

const [url, login, passwd, mode, dest] = process.argv.slice(2)

function fail(why) {
  console.log('FAIL ' + why)
  process.exit(1)
}
setTimeout(() => fail('timeout'), 20000)

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// 160 μ-law bytes per 20 ms; each packet's bytes differ from its
// neighbours' so a packet that comes back can be recognised. 0x7F and 0xFF
// (both zero) are avoided: the switch may decode and encode again.
function payload(n) {
  const b = Buffer.alloc(160)
  for (let i = 0; i < 160; i++) {
    let v = (n * 7 + i) % 254
    if (v === 0x7f) v = 0x10
    b[i] = v
  }
  return b
}

// verto JSON-RPC over one WebSocket: calls with replies, and the switch's
// requests.
async function connect() {
  const ws = new WebSocket(url)
  let id = 0
  const pending = new Map()
  const waiters = []
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString())
    if (m.method) {
      for (const w of waiters) w(m)
      return
    }
    const p = pending.get(m.id)
    if (p) {
      pending.delete(m.id)
      p(m)
    }
  })
  await new Promise((r) => ws.on('open', r))
  return {
    call: (method, params) => new Promise((resolve) => {
      id++
      pending.set(id, resolve)
      ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }))
    }),
    request: (method) => new Promise((resolve) => waiters.push((m) => m.method === method && resolve(m))),
    close: () => new Promise((r) => { ws.on('close', r); ws.close() }),
  }
}

function newPc() {
  return new RTCPeerConnection({
    codecs: {
      audio: [new RTCRtpCodecParameters({ mimeType: 'audio/PCMU', clockRate: 8000, channels: 1, payloadType: 0 })],
    },
  })
}

// Counts what comes back on `pc` against what was sent.
function counter(pc, sent) {
  const c = { received: 0, matched: 0 }
  pc.onTrack.subscribe((remote) => {
    remote.onReceiveRtp.subscribe((rtp) => {
      c.received++
      if (sent.has(rtp.payload.toString('hex'))) c.matched++
    })
  })
  return c
}

async function gathered(pc) {
  while (pc.iceGatheringState !== 'complete') await sleep(20)
}

async function connected(pc) {
  const deadline = Date.now() + 10000
  while (pc.connectionState !== 'connected') {
    if (Date.now() > deadline) fail('no connection: ' + pc.connectionState)
    await sleep(20)
  }
}

// Answers the switch's offer `sdp` on a new peer connection, counting
// what comes back against `sent`: the pc, the local track, the counts and
// the answer's SDP.
async function answerOffer(sdp, sent) {
  const pc = newPc()
  const track = new MediaStreamTrack({ kind: 'audio' })
  const counts = counter(pc, sent)
  await pc.setRemoteDescription({ type: 'offer', sdp })
  const t = pc.getTransceivers()[0]
  t.setDirection('sendrecv')
  await t.sender.replaceTrack(track)
  await pc.setLocalDescription(await pc.createAnswer())
  await gathered(pc)
  return { pc, track, counts, sdp: pc.localDescription.sdp }
}

// Sends packets first..first+count of the pattern, 20 ms apart.
async function sendPattern(track, sent, first, count) {
  for (let n = first; n < first + count; n++) {
    const p = payload(n)
    sent.add(p.toString('hex'))
    track.writeRtp(new RtpPacket(new RtpHeader({
      payloadType: 0, sequenceNumber: n + 1, timestamp: n * 160, marker: n === first, ssrc: 1234,
    }), p))
    await sleep(20)
  }
}

async function main() {
  let pc = newPc()
  let track = new MediaStreamTrack({ kind: 'audio' })
  const sent = new Set()
  let counts = counter(pc, sent)

  let rpc = await connect()
  const l = await rpc.call('login', { login, passwd })
  if (!l.result) fail('login: ' + JSON.stringify(l))
  const sessid = l.result.sessid
  let callID
  if (mode === 'call' || mode === 'reattach') {
    pc.addTransceiver(track, { direction: 'sendrecv' })
    await pc.setLocalDescription(await pc.createOffer())
    await gathered(pc)
    callID = 'media-' + Date.now()
    const answered = rpc.request('verto.answer')
    const inv = await rpc.call('verto.invite', {
      sdp: pc.localDescription.sdp,
      dialogParams: { callID, destination_number: dest, caller_id_number: '1000' },
    })
    if (!inv.result) fail('invite: ' + JSON.stringify(inv))
    const answer = await answered
    console.log('ANSWERED')
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.params.sdp })
  } else {
    const invited = rpc.request('verto.invite')
    console.log('READY')
    const invite = await invited
    callID = invite.params.callID
    console.log('INVITED ' + callID)
    await pc.close()
    const a = await answerOffer(invite.params.sdp, sent)
    pc = a.pc
    track = a.track
    counts = a.counts
    const ans = await rpc.call('verto.answer', { sdp: a.sdp, dialogParams: { callID } })
    if (!ans.result) fail('answer: ' + JSON.stringify(ans))
    console.log('ANSWERED')
  }
  await connected(pc)
  console.log('CONNECTED')
  const half = mode === 'reattach' ? 50 : 100
  await sendPattern(track, sent, 0, half)
  await sleep(500)
  console.log(`MEDIA sent=${sent.size} received=${counts.received} matched=${counts.matched}`)
  if (mode === 'reattach') {
    // Gone: the WebSocket and the peer connection; the call stays up.
    await rpc.close()
    await pc.close()
    console.log('DETACHED')
    await sleep(1000)
    rpc = await connect()
    const ready = rpc.request('verto.clientReady')
    const attach = rpc.request('verto.attach')
    const again = await rpc.call('login', { login, passwd, sessid })
    if (!again.result) fail('login again: ' + JSON.stringify(again))
    const r = await ready
    const offer = await attach
    if (offer.params.callID !== callID) fail('attach of another call: ' + JSON.stringify(offer))
    const sent2 = new Set()
    const a = await answerOffer(offer.params.sdp, sent2)
    const counts2 = a.counts
    const res = await rpc.call('verto.attach', { sdp: a.sdp, dialogParams: { callID } })
    if (!res.result) fail('attach: ' + JSON.stringify(res))
    await connected(a.pc)
    await sendPattern(a.track, sent2, half, half)
    await sleep(500)
    const uuid = (r.params.reattached_sessions || [])[0]
    console.log(`REATTACHED uuid=${uuid} sent=${sent2.size} matched=${counts2.matched}`)
    pc = a.pc
  }
  const bye = await rpc.call('verto.bye', { dialogParams: { callID } })
  console.log('BYE ' + JSON.stringify(bye.result || bye.error))
  await pc.close()
  process.exit(0)
}

main().catch((e) => fail(String((e && e.stack) || e)))
