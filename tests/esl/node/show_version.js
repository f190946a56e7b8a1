// node show_version.js PORT: modesl, the published Node.js event-socket
// client, reads `version` and parses `show modules` with its own show()
// (json and xml forms), as it does against FreeSWITCH. Prints "OK …" or
// exits non-zero with a FAIL line.
'use strict';
const esl = require('modesl');

const port = parseInt(process.argv[2], 10);
function fail(msg) {
    console.log('FAIL: ' + msg);
    process.exit(1);
}
function check(cond, msg) {
    if (!cond) fail(msg);
}
setTimeout(() => fail('timed out'), 20000).unref();

const conn = new esl.Connection('127.0.0.1', port, 'ClueCon', () => {
    conn.api('version', (res) => {
        const v = res.getBody();
        const m = /^FreeSWITCH Version (\d+)\.(\d+)\.(\d+)/.exec(v);
        check(m, 'version: ' + JSON.stringify(v));
        check(parseInt(m[1], 10) === 1 && parseInt(m[2], 10) >= 10, 'version numbers: ' + v);
        conn.show('modules', 'json', (err, parsed) => {
            check(!err, 'show modules as json: ' + err);
            const rows = parsed.rows;
            check(parsed.row_count === rows.length && rows.length > 0, 'row_count ' + parsed.row_count);
            check(JSON.stringify(Object.keys(rows[0])) === '["type","name","ikey","filename"]',
                'columns ' + Object.keys(rows[0]));
            const lb = rows.filter((r) => r.ikey === 'mod_loopback').map((r) => r.type + ':' + r.name);
            check(JSON.stringify(lb.sort()) === '["endpoint:loopback","endpoint:null"]', 'mod_loopback ' + lb);
            conn.show('modules', 'xml', (err2, x) => {
                check(!err2, 'show modules as xml: ' + err2);
                check(x.rowCount === rows.length, 'xml rowCount ' + x.rowCount + ' vs ' + rows.length);
                check(JSON.stringify(x.rows) === JSON.stringify(rows), 'the XML rows are the JSON rows');
                console.log('OK ' + rows.length + ' rows, ' + m[0]);
                conn.disconnect();
                process.exit(0);
            });
        });
    });
});
conn.on('error', (e) => fail('connection error: ' + e));
