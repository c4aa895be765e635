import Foundation
import Hashing

/// The trainers the service offers, by kind.
public enum Trainers {
    /// Every kind the service can train with the configured settings.
    public static func all(configuration: Configuration, logger: Logger) -> [ModelTrainer] {
        []
    }
}
