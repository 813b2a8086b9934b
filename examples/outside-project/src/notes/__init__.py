"""The notes service: short notes with tags, which the tags service spells."""
