# brama messages in Russian (Fluent). Every catalog has the same keys; a test checks it.

registered = Пользователь успешно зарегистрирован!
username-taken = Ошибка! Имя пользователя уже занято!
email-taken = Ошибка! Адрес почты уже используется!
phone-taken = Ошибка! Телефон уже используется!
invalid-credentials = Неверное имя пользователя или пароль
authorized = Авторизован
token-expired = Не авторизован! Срок действия токена доступа истёк!
unauthorized = Не авторизован!
no-token = Токен не передан!
refresh-unknown = Такого токена обновления нет в базе данных
refresh-expired = Срок действия токена обновления истёк. Войдите заново
refresh-reused = Токен обновления уже был использован; сеанс завершён. Войдите заново
refresh-rotated = Токен обновления только что заменён; используйте новый
logged-out = Вы вышли из системы!
logged-out-all = Вы вышли из всех сеансов!
session-revoked = Сеанс завершён
password-changed = Пароль успешно изменён!
wrong-password = Текущий пароль неверен
last-owner = Вы последний владелец организации: сначала назначьте владельцем другую учетную запись
account-deleted = Ваша учетная запись удалена
validation-failed = Ошибка проверки данных
rate-limited = Слишком много запросов, попробуйте позже
database-unavailable = База данных не отвечает, попробуйте через минуту
storage-full = Сервер сейчас не может ничего сохранить (диск заполнен), попробуйте позже
busy = Сервер занят, попробуйте через минуту
csrf-missing = Нет токена CSRF: передайте заголовок sessionId
csrf-invalid = Токен CSRF не совпадает
cross-site = Межсайтовый запрос отклонён
not-found = Не найдено.
method-not-allowed = Метод не поддерживается
forbidden = Доступ запрещён
invalid-json = Тело запроса не является корректным JSON
body-too-large = Тело запроса слишком большое
unsupported-media-type = Передайте тело как application/json
internal = Возникла ошибка, попробуйте позже.
reset-requested = Если этот адрес принадлежит аккаунту, на него отправлена ссылка для сброса пароля
reset-done = Пароль успешно сброшен! Войдите заново
require-moderator = Требуется роль модератора!
require-admin = Требуется роль администратора!
require-owner = Требуется роль владельца!
cannot-change-self = Нельзя изменить собственную роль или статус
invalid-query = Неверные параметры запроса
member-not-found = Участник не найден.
version-conflict = Данные участника уже изменены; обновите их и попробуйте снова
member-deleted = Участник успешно удалён!
import-failed = Ничего не импортировано: исправьте строки из errors
json-object-expected = Тело запроса должно быть объектом JSON
nul-character = не должно содержать символ NUL
reset-invalid = Ссылка для сброса пароля недействительна, использована или устарела
problem-taken = уже используется
problem-type = неверный тип; передайте строку
problem-unknown = неизвестный столбец
problem-required = обязательное поле
problem-length = длина от { $min } до { $max } символов
problem-characters = содержит недопустимые символы
problem-format = имеет неверный формат
problem-password-classes = минимум 1 большая буква, 1 маленькая буква, 1 цифра и 1 символ
problem-common-password = слишком распространённый; выберите другой
problem-message = { $field }: { $detail }
email-reset-subject = Сброс пароля brama
email-reset-body = Кто-то запросил сброс пароля вашего аккаунта.

    Чтобы задать новый пароль, откройте ссылку в течение часа:
    { $link }

    Если это были не вы, просто проигнорируйте письмо; пароль останется прежним.
activation-invalid = Ссылка активации недействительна, использована или устарела
company-created = Учетная запись успешно создана. Письмо активации отправлено на почту .
invalid-email-or-password = Неверный email или пароль
activation-resent = Если этот адрес принадлежит неактивированному аккаунту, на него отправлена новая ссылка
success = Готово
email-activation-subject = Активация аккаунта brama
email-activation-body = Учетная запись вашей компании создана.

    Чтобы задать пароль и активировать её, откройте ссылку в течение 48 часов:
    { $link }

    Если вы не регистрировались, просто проигнорируйте письмо.
