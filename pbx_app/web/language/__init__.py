"""The page's language: the texts and dates in the visitor's language, and the switch."""
