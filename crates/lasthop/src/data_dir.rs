//! Where lasthop keeps its data: `--data`, else `LASTHOP_DATA`, else `./lasthop-data`.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct DataDir {
    /// Data directory (span index and write-ahead log).
    #[arg(
        long = "data",
        env = "LASTHOP_DATA",
        default_value = "lasthop-data",
        value_name = "DIR"
    )]
    pub path: PathBuf,
}
