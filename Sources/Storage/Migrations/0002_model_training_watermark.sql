-- The newest image id a model was trained on, as a column: the automatic retrain counts images added
-- since then. Earlier versions kept it as the key trainedThroughImageID inside the config JSON.
ALTER TABLE models ADD COLUMN trained_through_image_id INTEGER;
UPDATE models SET trained_through_image_id = json_extract(config, '$.trainedThroughImageID')
WHERE json_valid(config) AND json_type(config, '$.trainedThroughImageID') = 'integer';
