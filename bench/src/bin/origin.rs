//! `bench-origin`: a fixed-response HTTP/1.1 keep-alive origin.
//!
//! `bench-origin --listen 127.0.0.1:0` prints `listening on ADDR` once bound,
//! then serves `/tiny`, `/1k`, `/64k`, `/json64k` and `/ping` until killed.

use clap::Parser;

#[derive(Parser)]
#[command(about = "Fixed-response HTTP/1.1 origin for sluice-bench")]
struct Args {
    /// Address to bind; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!("listening on {}", listener.local_addr()?);
        sluice_bench::origin::serve(listener).await;
        Ok(())
    })
}
