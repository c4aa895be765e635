import HTTP
import Imaging
import Storage

/// Errors of the application that map to HTTP responses; each says what the client can do.
public enum ServiceError: HTTPResponseError, CustomStringConvertible {
    case badRequest(String)
    case notFound(String)
    case unsupportedMediaType(String)
    case payloadTooLarge(String)
    case unprocessable(String)
    case unauthorized
    case forbidden
    case conflict(String)
    case unavailable(String)

    public var status: Int {
        switch self {
        case .badRequest: return 400
        case .notFound: return 404
        case .unsupportedMediaType: return 415
        case .payloadTooLarge: return 413
        case .unprocessable: return 422
        case .unauthorized: return 401
        case .forbidden: return 403
        case .conflict: return 409
        case .unavailable: return 503
        }
    }

    public var code: String {
        switch self {
        case .badRequest: return "bad_request"
        case .notFound: return "not_found"
        case .unsupportedMediaType: return "unsupported_media_type"
        case .payloadTooLarge: return "payload_too_large"
        case .unprocessable: return "unprocessable_image"
        case .unauthorized: return "unauthorized"
        case .forbidden: return "forbidden"
        case .conflict: return "conflict"
        case .unavailable: return "unavailable"
        }
    }

    public var message: String {
        switch self {
        case .badRequest(let text), .notFound(let text), .unsupportedMediaType(let text), .payloadTooLarge(let text),
             .unprocessable(let text), .conflict(let text), .unavailable(let text):
            return text
        case .unauthorized: return "this endpoint needs 'Authorization: Bearer <token>'"
        case .forbidden: return "the bearer token is not valid"
        }
    }

    public var headers: [(String, String)] {
        if case .unauthorized = self { return [("WWW-Authenticate", "Bearer")] }
        return []
    }

    public var description: String { "\(status) \(code): \(message)" }

    /// The response error for an image the decoder refused.
    static func from(_ error: ImagingError) -> ServiceError {
        switch error {
        case .unsupportedFormat:
            return .unsupportedMediaType("the body is not a JPEG or PNG image")
        case .tooManyBytes, .tooManyPixels, .sideTooLong, .tooMuchMemory:
            return .payloadTooLarge(error.description)
        case .corrupt:
            return .unprocessable(error.description)
        }
    }
}

/// Two errors are the same when a client sees the same status and message.
extension ServiceError: Equatable {
    public static func == (left: ServiceError, right: ServiceError) -> Bool {
        left.status == right.status && left.message == right.message
    }
}

/// The database being unreachable is the client's 503: the same answer as `ServiceError.unavailable`,
/// with a `Retry-After`, so routes need not know which store they talk to.
extension StorageUnavailableError: HTTPResponseError {
    public var status: Int { ServiceError.unavailable(description).status }
    public var code: String { ServiceError.unavailable(description).code }
    public var message: String { description }
    public var headers: [(String, String)] { [("Retry-After", "2")] }
}
