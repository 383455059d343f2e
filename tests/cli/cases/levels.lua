-- One record per level.
log.debug("debug record")
log.info("info record")
log.warn("warn record")
log.error("error record")
