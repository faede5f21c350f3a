//! The `erp-bridge` command line: `up` (the whole product, with the embedded M3 simulator by
//! default), `studio`, `connector`, `sim` (the simulator alone), `bench` and `mapping`. This file
//! parses ([`cli`]) and dispatches to the library; exit codes are chosen here: 0 after a clean
//! stop (SIGINT or SIGTERM), 1 on error (3: a connector whose token Studio refused).

mod cli;

use clap::Parser;
use cli::{Cli, Command};
use erp_bridge::{commands, mapping_client};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli {
        config,
        log_format,
        command,
    } = Cli::parse();
    cli::init_logging(log_format, config.as_deref());
    let config = config.as_deref();
    match command {
        Command::Up(args) => commands::up(args.config(config)?).await?,
        Command::Studio { server } => {
            let mut cfg = erp_bridge::config::Config::load(config)?;
            server.apply(&mut cfg);
            commands::studio(cfg).await?
        }
        Command::Connector { bundle, data_dir } => {
            let bundle = runtime::connector::Bundle::load(&bundle)?;
            if let Err(e) = commands::connector(bundle, data_dir).await {
                fail(&e, commands::connector_exit_code(&e));
            }
        }
        Command::Sim {
            listen,
            items,
            changes_per_second,
        } => commands::sim(listen, items, changes_per_second).await?,
        // Exit at once on error: returning would wait for a stuck blocking task (seeding) forever.
        Command::Bench(args) => commands::bench(args.options()?).await.unwrap_or_else(|e| fail(&e, 1)),
        // Plain one-line errors for the mapping tools (no backtrace, exit status 1).
        Command::Mapping(args) => {
            let (remote, task) = args.task();
            mapping_client::run(&remote, task).await.unwrap_or_else(|e| fail(&e, 1))
        }
    }
    Ok(())
}

/// Print `e` on one line and exit with `code`.
fn fail(e: &anyhow::Error, code: i32) -> ! {
    eprintln!("error: {e:#}");
    std::process::exit(code)
}
