// A bare verto connection driven by the test, line by line: it prints
// "OPEN" once connected, then "RECV <json>" for every frame the switch
// sends and "CLOSED <code>" when the socket closes; every line the test
// writes to its stdin is sent as a frame, except "close", which closes the
// socket, and "pause", which stops reading it (a client that hangs). For
// the sessions, events, chat and display tests, where the test itself
// plays the client.
//
//   node raw.js <ws-or-wss-url>
//
// VERTO_CA=<pem file> makes a wss connection trust that certificate.

'use strict'

const fs = require('fs')
const readline = require('readline')
const WebSocket = require('ws')

const url = process.argv[2]
const opts = process.env.VERTO_CA ? { ca: fs.readFileSync(process.env.VERTO_CA) } : {}
const ws = new WebSocket(url, opts)

ws.on('open', () => console.log('OPEN'))
ws.on('message', (data) => console.log('RECV ' + data.toString()))
ws.on('error', (e) => console.log('ERROR ' + e.message))
ws.on('close', (code) => {
  console.log('CLOSED ' + code)
  process.exit(0)
})

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'close') ws.close()
  else if (line === 'pause') {
    // Not even ws reads any more (it resumes a paused socket itself).
    ws._socket.removeAllListeners('data')
    ws._socket.pause()
  }
  else ws.send(line)
})
// Never outlive the test.
setTimeout(() => process.exit(2), 60000)
