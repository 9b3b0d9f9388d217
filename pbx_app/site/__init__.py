"""Adding pbx_app to a site's existing Asterisk configuration (`pbx-app asterisk install`)."""
