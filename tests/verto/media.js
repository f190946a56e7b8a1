// A WebRTC client (werift, a WebRTC stack in TypeScript) talking to
// hotswitch's mod_verto with raw verto JSON-RPC: it logs in and either
// calls <destination> (offering PCMU with ICE and DTLS-SRTP) or, with
// "answer", answers the switch's call; then it sends a known audio pattern
// for two seconds and counts the packets that come back (the test puts the
// echo application on the far side).
//
//   node media.js <ws-url> <login> <passwd> call <destination>
//   node media.js <ws-url> <login> <passwd> answer
//
// Prints "MEDIA sent=<n> received=<n> matched=<n>", hangs up and exits 0.

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
  }
}

async function main() {
  const pc = new RTCPeerConnection({
    codecs: {
      audio: [new RTCRtpCodecParameters({ mimeType: 'audio/PCMU', clockRate: 8000, channels: 1, payloadType: 0 })],
    },
  })
  const track = new MediaStreamTrack({ kind: 'audio' })
  const sent = new Set()
  let received = 0
  let matched = 0
  pc.onTrack.subscribe((remote) => {
    remote.onReceiveRtp.subscribe((rtp) => {
      received++
      if (sent.has(rtp.payload.toString('hex'))) matched++
    })
  })
  const gathered = async () => {
    while (pc.iceGatheringState !== 'complete') await sleep(20)
  }

  const rpc = await connect()
  const l = await rpc.call('login', { login, passwd })
  if (!l.result) fail('login: ' + JSON.stringify(l))
  let callID
  if (mode === 'call') {
    pc.addTransceiver(track, { direction: 'sendrecv' })
    await pc.setLocalDescription(await pc.createOffer())
    await gathered()
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
    await pc.setRemoteDescription({ type: 'offer', sdp: invite.params.sdp })
    const t = pc.getTransceivers()[0]
    t.setDirection('sendrecv')
    await t.sender.replaceTrack(track)
    await pc.setLocalDescription(await pc.createAnswer())
    await gathered()
    const ans = await rpc.call('verto.answer', { sdp: pc.localDescription.sdp, dialogParams: { callID } })
    if (!ans.result) fail('answer: ' + JSON.stringify(ans))
    console.log('ANSWERED')
  }
  const deadline = Date.now() + 10000
  while (pc.connectionState !== 'connected') {
    if (Date.now() > deadline) fail('no connection: ' + pc.connectionState)
    await sleep(20)
  }
  console.log('CONNECTED')
  let ts = 0
  for (let n = 0; n < 100; n++) {
    const p = payload(n)
    sent.add(p.toString('hex'))
    track.writeRtp(new RtpPacket(new RtpHeader({
      payloadType: 0, sequenceNumber: n + 1, timestamp: ts, marker: n === 0, ssrc: 1234,
    }), p))
    ts += 160
    await sleep(20)
  }
  await sleep(500)
  console.log(`MEDIA sent=${sent.size} received=${received} matched=${matched}`)
  const bye = await rpc.call('verto.bye', { dialogParams: { callID } })
  console.log('BYE ' + JSON.stringify(bye.result || bye.error))
  await pc.close()
  process.exit(0)
}

main().catch((e) => fail(String((e && e.stack) || e)))
