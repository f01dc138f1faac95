//! Prints a password hash for the `password` field of a ledger file.
//!
//! ```text
//! cargo run -p moco-auth --example hash -- PASSWORD            # argon2id PHC string
//! cargo run -p moco-auth --example hash -- PASSWORD --bcrypt   # bcrypt, cost 12
//! ```

use std::process::ExitCode;

use moco_auth::{hash_password, HashAlgorithm};

fn main() -> ExitCode {
    let mut password = None;
    let mut algorithm = HashAlgorithm::Argon2id;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--bcrypt" => algorithm = HashAlgorithm::Bcrypt { cost: 12 },
            "--argon2id" => algorithm = HashAlgorithm::Argon2id,
            "-h" | "--help" => {
                println!("usage: hash PASSWORD [--bcrypt]");
                return ExitCode::SUCCESS;
            }
            _ if password.is_none() => password = Some(arg),
            _ => {
                eprintln!("unexpected argument `{arg}`; usage: hash PASSWORD [--bcrypt]");
                return ExitCode::from(2);
            }
        }
    }
    let Some(password) = password else {
        eprintln!("usage: hash PASSWORD [--bcrypt]");
        return ExitCode::from(2);
    };
    match hash_password(password.as_bytes(), algorithm) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
