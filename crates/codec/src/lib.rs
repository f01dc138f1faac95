//! MQTT packet model, decoder and encoder for protocol levels 3 (v3.0), 4 (v3.1.1) and 5.
#![forbid(unsafe_code)]
