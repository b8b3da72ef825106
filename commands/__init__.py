"""Entry points: the click CLI (`commands ...`) and, later, the web page."""
