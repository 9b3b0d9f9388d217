"""Live calls: the Stasis app that receives them, one channel's ARI operations, and the
per-call flow that carries a routing plan out."""
