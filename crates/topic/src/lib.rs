//! MQTT topic names and filters, the subscription trie and the retained-message index.
#![forbid(unsafe_code)]
