-- delegate_to without a fleet: runs locally and says so.
task("remote_job"):command(function() return true, "ran here" end):delegate_to("mariguica"):build()
