-- What a job decided, as a JSON object: a retrain's quality-gate scores and the model it chose.
ALTER TABLE jobs ADD COLUMN result TEXT;
