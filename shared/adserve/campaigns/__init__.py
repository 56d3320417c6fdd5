"""What an advertiser books: the campaign model, its API shapes, the directory and frequency-cap rules."""
