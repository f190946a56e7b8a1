// A JsSIP phone in Node: registers `uri` with `password` over the
// WebSocket URL (ws: or wss:, the switch's self-signed certificate
// accepted) and prints REGISTERED, or FAILED <cause> and exits 1. It stays
// registered until killed. Usage: node register.js <url> <uri> <password>
'use strict';
const WebSocket = require('ws');
// JsSIP opens `new WebSocket(url, 'sip')`, the browser's API: the ws
// package's class with the test's certificate accepted.
global.WebSocket = class extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { rejectUnauthorized: false });
  }
};
const JsSIP = require('jssip');

const [url, uri, password] = process.argv.slice(2);
const ua = new JsSIP.UA({
  sockets: [new JsSIP.WebSocketInterface(url)],
  uri,
  password,
  register: true,
  register_expires: 120,
});
ua.on('registered', () => console.log('REGISTERED'));
ua.on('registrationFailed', (e) => {
  console.log(`FAILED ${e.cause}`);
  process.exit(1);
});
ua.start();
