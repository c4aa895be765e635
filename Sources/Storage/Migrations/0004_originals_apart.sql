-- Original image bytes move to their own table. In `images` they sat before the metadata, so reading
-- a search hit's metadata walked the original's overflow pages first: a few pages for a small PNG,
-- hundreds for a photo. The thumbnail (at most a few kilobytes) stays, as training reads it in bulk.
CREATE TABLE image_originals (
    image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    original BLOB NOT NULL
);
INSERT INTO image_originals (image_id, original) SELECT id, original FROM images;
ALTER TABLE images DROP COLUMN original;
