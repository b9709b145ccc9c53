//! The native binary protocol, v1: one library for the server, the client and the load
//! generator, so the three can never disagree. The normative description, with byte
//! diagrams and golden vectors, is `proto-spec/protocol.md`.
//!
//! - [`frame`]: the 24-byte header and the "is a whole frame here?" check.
//! - [`op`]: opcodes, typed requests, and the bodies of requests and responses.
//! - [`status`]: response status codes.

pub mod frame;
pub mod op;
pub mod status;

pub use frame::{
    check, FrameError, Header, HEADER_SIZE, MAGIC_REQUEST, MAGIC_RESPONSE, PROTOCOL_VERSION,
};
pub use op::{
    decode_request, encode_request, Opcode, Refusal, Request, Response, ResponseWriter, SetMode,
    Topology,
};
pub use status::Status;
