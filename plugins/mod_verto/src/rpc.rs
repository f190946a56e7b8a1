//! JSON-RPC 2.0 as verto speaks it: the error codes FreeSWITCH's mod_verto
//! answers with, and the shapes of requests, results and errors.

use serde_json::{json, Map, Value};

/// Not JSON-RPC 2.0 (or not JSON at all).
pub const CODE_INVALID: i64 = -32600;
/// A method other than `login` before the client logged in.
pub const CODE_AUTH_REQUIRED: i64 = -32000;
/// Wrong password, unknown user, missing password.
pub const CODE_AUTH_FAILED: i64 = -32001;
/// A call-level failure (missing call, missing parameters).
pub const CODE_SESSION_ERROR: i64 = -32002;
/// A method verto does not know.
pub const CODE_METHOD_NOT_FOUND: i64 = -32601;

/// A reply carrying `result`.
pub fn result(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

/// A reply carrying `error: {code, message}`.
pub fn error(id: &Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

/// A reply carrying a whole error object (verto's call errors add fields
/// such as `callID`).
pub fn error_object(id: &Value, err: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": err })
}

/// A request the switch sends the client.
pub fn request(id: u64, method: &str, params: Map<String, Value>) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": Value::Object(params) })
}

/// A string member of an object, if it is one.
pub fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}
