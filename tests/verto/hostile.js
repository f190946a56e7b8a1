// Frames no verto client should send, on one connection, one at a time:
// prints "<tag> <reply>" for each, then "huge closed" once an oversized
// frame has made the switch close the connection.
//
//   node hostile.js <ws-url>

'use strict'

const WebSocket = require('ws')

const ws = new WebSocket(process.argv[2])
const steps = [
  ['malformed', '{"jsonrpc": "2.0", "method": '],
  ['version', JSON.stringify({ jsonrpc: '1.0', id: 1, method: 'login' })],
  ['unauthenticated', JSON.stringify({
    jsonrpc: '2.0', id: 2, method: 'verto.invite',
    params: { sdp: 'v=0', dialogParams: { callID: 'x', destination_number: '9196' } },
  })],
  ['binary', Buffer.from([0, 1, 2, 3])],
  ['login', JSON.stringify({
    jsonrpc: '2.0', id: 3, method: 'login',
    params: { login: '1000@127.0.0.1', passwd: '1234' },
  })],
  ['unknown', JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'verto.frobnicate', params: {} })],
  ['bye-nocall', JSON.stringify({
    jsonrpc: '2.0', id: 5, method: 'verto.bye', params: { dialogParams: { callID: 'nope' } },
  })],
]

let current = null

function next() {
  const step = steps.shift()
  if (!step) {
    current = 'huge'
    ws.send('x'.repeat(4 * 1024 * 1024))
    return
  }
  current = step[0]
  ws.send(step[1])
}

ws.on('open', next)
ws.on('message', (data) => {
  const text = data.toString()
  // Requests from the switch (verto.clientReady) are not replies.
  if (JSON.parse(text).method) return
  console.log(current + ' ' + text)
  next()
})
ws.on('close', () => {
  if (current === 'huge') {
    console.log('huge closed')
    process.exit(0)
  }
  console.log('closed early at ' + current)
  process.exit(1)
})
ws.on('error', (e) => console.log('error ' + e.message))
setTimeout(() => {
  console.log('timeout at ' + current)
  process.exit(1)
}, 15000)
