//! The `moco` MQTT broker binary; everything is in the `moco` library ([`moco::main`]).

fn main() -> std::process::ExitCode {
    moco::main()
}
