"""Scripts run in the workspace's own interpreter (standard library + bizon only), never imported by bizon-forge."""
