"""History: the call journal on the page, as JSON and as CSV, and the voicemail a call left."""
